"""The Canvas client against a scripted HTTP server: pagination, retries, throttling, tokens, scopes."""

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import formatdate
from typing import Any, cast

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from rostersync.canvas.client import CanvasClient, RetryPolicy, retry_after_seconds
from rostersync.canvas.errors import (
    AuthorizationError,
    CanvasError,
    CanvasPermissionError,
    CanvasUnavailableError,
    CanvasWriteUncertainError,
    InsufficientScopeError,
    OAuthError,
    UndeclaredEndpointError,
    UnsafeCanvasUrlError,
)
from rostersync.canvas.oauth import OAuthClient
from rostersync.canvas.scopes import (
    GRADE_SUBMISSION,
    LIST_ACCOUNT_COURSES,
    LIST_COURSE_ENROLLMENTS,
    LIST_LIVE_ASSESSMENT_RESULTS,
    Endpoint,
)
from rostersync.canvas.tokens import SharedToken, TenantTokenSource
from tests.unit.test_token_source import NOW, MemoryStore, TokenEndpoint, token


@dataclass
class ScriptedCanvas:
    url: str = ""
    script: dict[str, deque[Response]] = field(default_factory=lambda: defaultdict(deque))
    seen: list[Request] = field(default_factory=list)

    def reply(self, path: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.script[path].append(
            Response(text, status=status, headers=headers, content_type="application/json")
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        request.get_data()
        self.seen.append(request)
        queue = self.script.get(request.path)
        response = queue.popleft() if queue else Response("{}", status=404)
        return response(environ, start_response)


@dataclass
class Tokens:
    current: str = "token-1"
    renewals: int = 0

    def access_token(self) -> str:
        return self.current

    def renew(self, rejected_token: str) -> str:
        self.renewals += 1
        self.current = f"token-{self.renewals + 1}"
        return self.current


@contextmanager
def scripted_canvas() -> Iterator[ScriptedCanvas]:
    scripted = ScriptedCanvas()
    server = make_server("127.0.0.1", 0, scripted, threaded=True)
    scripted.url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield scripted
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[ScriptedCanvas]:
    with scripted_canvas() as scripted:
        yield scripted


@pytest.fixture
def canvas(scripted_server: ScriptedCanvas) -> ScriptedCanvas:
    scripted_server.script.clear()
    scripted_server.seen.clear()
    return scripted_server


def client_for(
    canvas: ScriptedCanvas,
    tokens: Tokens | None = None,
    attempts: int = 3,
    sleeps: list[float] | None = None,
    **policy: Any,
) -> CanvasClient:
    recorded = sleeps if sleeps is not None else []
    return CanvasClient(
        canvas.url,
        tokens or Tokens(),
        allow_insecure=True,
        timeout_seconds=5,
        retry=RetryPolicy(max_attempts=attempts, backoff_base_seconds=0.0, **policy),
        sleep=recorded.append,
    )


COURSES = "/api/v1/accounts/1/courses"


def test_follows_next_links_case_insensitively_to_the_end(canvas: ScriptedCanvas) -> None:
    canvas.reply(
        COURSES,
        [{"id": 1}],
        headers={"link": f'<{canvas.url}{COURSES}?page=bookmark:xyz&per_page=100>; REL="Next"'},
    )
    canvas.reply(
        COURSES,
        [{"id": 2}],
        headers={
            "Link": f'<{canvas.url}{COURSES}?page=3&per_page=100>; rel="next",'
            f'<{canvas.url}{COURSES}?page=1>; rel="first"'
        },
    )
    canvas.reply(COURSES, [])  # an empty last page without Link
    client = client_for(canvas)
    assert client.get_all(LIST_ACCOUNT_COURSES, [("state[]", "available")], account_id=1) == [
        {"id": 1},
        {"id": 2},
    ]
    first, second, third = canvas.seen
    assert first.args.getlist("state[]") == ["available"] and first.args["per_page"] == "100"
    assert second.args["page"] == "bookmark:xyz"  # the link is followed as given, never rebuilt
    assert third.args["page"] == "3"
    assert all(request.headers["User-Agent"].startswith("rostersync/") for request in canvas.seen)
    assert client.stats.requests == 3


RESULTS = "/api/v1/courses/5/live_assessments/9/results"


def test_a_list_wrapped_in_an_object_is_paged_by_the_endpoints_list_key(canvas: ScriptedCanvas) -> None:
    canvas.reply(
        RESULTS,
        {"results": [{"id": "1"}, {"id": "2"}]},
        headers={"Link": f'<{canvas.url}{RESULTS}?user_id=7&page=2&per_page=100>; rel="next"'},
    )
    canvas.reply(RESULTS, {"results": [{"id": "3"}], "meta": {"primaryCollection": "results"}})
    client = client_for(canvas)
    found = client.get_all(LIST_LIVE_ASSESSMENT_RESULTS, [("user_id", "7")], course_id=5, assessment_id=9)
    assert found == [{"id": "1"}, {"id": "2"}, {"id": "3"}]
    first, second = canvas.seen
    assert first.args["user_id"] == "7" and first.args["per_page"] == "100"
    assert second.args["page"] == "2"


@pytest.mark.parametrize(
    ("endpoint", "path", "body", "message"),
    [
        (LIST_ACCOUNT_COURSES, COURSES, {"results": []}, "returned dict, expected a list"),
        (LIST_LIVE_ASSESSMENT_RESULTS, RESULTS, [{"id": "1"}], "returned list, expected an object"),
        (LIST_LIVE_ASSESSMENT_RESULTS, RESULTS, {"result": []}, "returned no 'results' list"),
        (LIST_LIVE_ASSESSMENT_RESULTS, RESULTS, {"results": {"id": "1"}}, "returned no 'results' list"),
    ],
)
def test_a_page_of_the_wrong_shape_is_an_error(
    canvas: ScriptedCanvas, endpoint: Endpoint, path: str, body: object, message: str
) -> None:
    canvas.reply(path, body)
    with pytest.raises(CanvasError, match=message):
        client_for(canvas).get_all(endpoint, account_id=1, course_id=5, assessment_id=9)


def test_a_next_link_to_another_host_is_not_followed(canvas: ScriptedCanvas) -> None:
    canvas.reply(
        COURSES,
        [{"id": 1}],
        headers={"Link": '<http://169.254.169.254/api/v1/accounts/1/courses?page=2>; rel="next"'},
    )
    with pytest.raises(UnsafeCanvasUrlError):
        client_for(canvas).get_all(LIST_ACCOUNT_COURSES, account_id=1)


def test_5xx_is_retried_then_reported_as_unavailable(canvas: ScriptedCanvas) -> None:
    for _ in range(3):
        canvas.reply(COURSES, {"errors": [{"message": "An error occurred."}]}, status=500)
    client = client_for(canvas)
    with pytest.raises(CanvasUnavailableError):
        client.get_all(LIST_ACCOUNT_COURSES, account_id=1)
    assert client.stats.requests == 3 and client.stats.retries == 2


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (403, "403 Forbidden (Rate Limit Exceeded)\n", {"X-Rate-Limit-Remaining": "0.0"}),
        (429, "429 Too Many Requests", {"Retry-After": "0"}),
    ],
)
def test_throttling_backs_off_and_retries(
    canvas: ScriptedCanvas, status: int, body: str, headers: dict[str, str]
) -> None:
    canvas.reply(COURSES, body, status=status, headers=headers)
    canvas.reply(COURSES, [{"id": 1}])
    client = client_for(canvas)
    assert client.get_all(LIST_ACCOUNT_COURSES, account_id=1) == [{"id": 1}]
    assert client.stats.throttled == 1


def test_403_without_rate_limit_is_a_permission_error_not_retried(canvas: ScriptedCanvas) -> None:
    canvas.reply(
        COURSES,
        {"status": "unauthorized", "errors": [{"message": "user not authorized to perform that action"}]},
        status=403,
    )
    client = client_for(canvas)
    with pytest.raises(CanvasPermissionError):
        client.get_all(LIST_ACCOUNT_COURSES, account_id=1)
    assert client.stats.requests == 1


def test_expired_token_is_renewed_once_and_the_call_retried(canvas: ScriptedCanvas) -> None:
    canvas.reply(
        COURSES,
        {"errors": [{"message": "Expired access token."}]},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="canvas-lms"'},
    )
    canvas.reply(COURSES, [{"id": 1}])
    tokens = Tokens()
    assert client_for(canvas, tokens).get_all(LIST_ACCOUNT_COURSES, account_id=1) == [{"id": 1}]
    assert tokens.renewals == 1
    assert [request.headers["Authorization"] for request in canvas.seen] == [
        "Bearer token-1",
        "Bearer token-2",
    ]


def reply_invalid_token(canvas: ScriptedCanvas, times: int) -> None:
    for _ in range(times):
        canvas.reply(
            COURSES,
            {"errors": [{"message": "Invalid access token."}]},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="canvas-lms"'},
        )


def test_a_token_rejected_after_renewals_needs_reauthorization(canvas: ScriptedCanvas) -> None:
    reply_invalid_token(canvas, 3)
    tokens = Tokens()
    with pytest.raises(AuthorizationError):
        client_for(canvas, tokens).get_all(LIST_ACCOUNT_COURSES, account_id=1)
    assert tokens.renewals == 2


@dataclass
class CachedStore(MemoryStore):
    """The store as a worker sees it: a read that need not be fresh answers from its process's cache."""

    cached: SharedToken | None = None

    def read(self, *, fresh: bool) -> SharedToken:
        if fresh or self.cached is None:
            self.cached = super().read(fresh=True)
        return self.cached


def test_a_grant_revoked_after_another_workers_refresh_marks_the_tenant(canvas: ScriptedCanvas) -> None:
    # This worker's cached token was refreshed by another worker; then the grant was revoked, which
    # kills both tokens and the refresh token: Canvas rejects each, and refuses the refresh.
    mine, theirs = (
        token(timedelta(hours=1), timedelta(minutes=50), access=name) for name in ("mine", "theirs")
    )
    store = CachedStore(theirs, cached=mine)
    endpoint = TokenEndpoint(refusal=OAuthError("invalid_grant", "revoked", status=400))
    reply_invalid_token(canvas, 2)
    tokens = TenantTokenSource(
        store, oauth=cast(OAuthClient, endpoint), refresh_margin_seconds=300, clock=NOW.timestamp
    )
    with pytest.raises(AuthorizationError, match="invalid_grant"):
        CanvasClient(canvas.url, tokens, allow_insecure=True, timeout_seconds=5).get_all(
            LIST_ACCOUNT_COURSES, account_id=1
        )
    assert [request.headers["Authorization"] for request in canvas.seen] == ["Bearer mine", "Bearer theirs"]
    assert endpoint.calls == ["refresh"]
    assert store.refused == "token refresh refused: invalid_grant"  # the tenant now says: authorize again


def test_missing_scope_names_the_scope_and_is_not_retried(canvas: ScriptedCanvas) -> None:
    path = "/api/v1/courses/5/enrollments"
    canvas.reply(path, {"errors": [{"message": "Insufficient scopes on access token."}]}, status=401)
    tokens = Tokens()
    with pytest.raises(InsufficientScopeError) as raised:
        client_for(canvas, tokens).get_all(LIST_COURSE_ENROLLMENTS, course_id=5)
    assert raised.value.scope == "url:GET|/api/v1/courses/:course_id/enrollments"
    assert tokens.renewals == 0 and len(canvas.seen) == 1


def test_redirects_are_not_followed(canvas: ScriptedCanvas) -> None:
    canvas.reply(COURSES, "", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data"})
    with pytest.raises(Exception, match="redirect"):
        client_for(canvas).get_all(LIST_ACCOUNT_COURSES, account_id=1)
    assert len(canvas.seen) == 1


def test_endpoints_outside_the_manifest_are_refused_before_any_request(canvas: ScriptedCanvas) -> None:
    with pytest.raises(UndeclaredEndpointError):
        client_for(canvas).get_all(Endpoint("DELETE", "/api/v1/courses/:course_id"), course_id=1)
    assert canvas.seen == []


def test_error_messages_never_carry_the_token(canvas: ScriptedCanvas) -> None:
    canvas.reply(COURSES, {"errors": [{"message": "boom"}]}, status=400)
    with pytest.raises(CanvasError) as raised:
        client_for(canvas, Tokens(current="secret-token-value")).get_all(LIST_ACCOUNT_COURSES, account_id=1)
    assert type(raised.value) is CanvasError and raised.value.status == 400
    assert "boom" in str(raised.value) and "secret-token-value" not in str(raised.value)


def test_retry_after_is_honoured(canvas: ScriptedCanvas) -> None:
    canvas.reply(COURSES, "429 Too Many Requests", status=429, headers={"Retry-After": "7"})
    canvas.reply(COURSES, [])
    sleeps: list[float] = []
    client_for(canvas, sleeps=sleeps).get_all(LIST_ACCOUNT_COURSES, account_id=1)
    assert sleeps == [7.0]


def test_retry_after_as_an_http_date_is_honoured(canvas: ScriptedCanvas) -> None:
    in_nine_seconds = formatdate(time.time() + 9, usegmt=True)
    canvas.reply(COURSES, "503 Service Unavailable", status=503, headers={"Retry-After": in_nine_seconds})
    canvas.reply(COURSES, [])
    sleeps: list[float] = []
    client_for(canvas, sleeps=sleeps).get_all(LIST_ACCOUNT_COURSES, account_id=1)
    assert len(sleeps) == 1 and 7.0 <= sleeps[0] <= 9.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0 - 784111700.0),  # IMF-fixdate
        ("Sunday, 06-Nov-94 08:49:37 GMT", 77.0),  # obsolete RFC 850 form
        ("Sun Nov  6 08:49:37 1994", 77.0),  # obsolete asctime form, no zone: GMT
        ("soon", None),
        ("-5", None),
        ("١٢", None),  # Arabic-Indic digits are not delay-seconds
    ],
)
def test_retry_after_reads_both_forms_of_rfc_9110(header: str, seconds: float | None) -> None:
    assert retry_after_seconds(header, now=lambda: 784111700.0) == seconds


def test_throttling_that_never_ends_gives_up_after_its_budget(canvas: ScriptedCanvas) -> None:
    for _ in range(4):
        canvas.reply(COURSES, "403 Forbidden (Rate Limit Exceeded)\n", status=403)
    client = client_for(canvas, max_throttle_retries=3, throttle_backoff_base_seconds=0.0)
    with pytest.raises(CanvasUnavailableError, match="throttled"):
        client.get_all(LIST_ACCOUNT_COURSES, account_id=1)
    assert client.stats.throttled == 4 and client.stats.requests == 4


def test_low_rate_limit_remaining_slows_the_next_call_down(canvas: ScriptedCanvas) -> None:
    next_link = f'<{canvas.url}{COURSES}?page=2>; rel="next"'
    canvas.reply(COURSES, [{"id": 1}], headers={"Link": next_link, "X-Rate-Limit-Remaining": "600.0"})
    canvas.reply(COURSES, [{"id": 2}], headers={"X-Rate-Limit-Remaining": "30.0"})
    sleeps: list[float] = []
    client = client_for(canvas, sleeps=sleeps)
    client.get_all(LIST_ACCOUNT_COURSES, account_id=1)
    assert client.stats.paced == 1
    assert sleeps == [pytest.approx(2.0 * (1 - 30 / 100))]


def test_an_unreachable_canvas_is_unavailable_after_the_retries(canvas: ScriptedCanvas) -> None:
    client = CanvasClient(
        "http://127.0.0.1:9",  # nothing listens on the discard port
        Tokens(),
        allow_insecure=True,
        timeout_seconds=1,
        retry=RetryPolicy(max_attempts=2, backoff_base_seconds=0.0),
        sleep=lambda _: None,
    )
    with pytest.raises(CanvasUnavailableError, match="ConnectionError"):
        client.get_all(LIST_ACCOUNT_COURSES, account_id=1)
    assert client.stats.retries == 1


def test_a_name_that_rebinds_to_a_private_address_is_refused_at_connect_time(
    canvas: ScriptedCanvas, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name passed the save-time check (as if it resolved publicly then) but now leads to loopback.
    monkeypatch.setattr("rostersync.canvas.client.check_origin_is_reachable_safely", lambda url, **_: url)
    canvas.reply(COURSES, [{"id": 1}])
    client = CanvasClient(canvas.url, Tokens(), allow_insecure=False, timeout_seconds=5, sleep=lambda _: None)
    with pytest.raises(UnsafeCanvasUrlError, match="non-public"):
        client.get_all(LIST_ACCOUNT_COURSES, account_id=1)
    assert canvas.seen == []  # not a byte reached the server


def test_a_write_answered_5xx_is_not_sent_again(canvas: ScriptedCanvas) -> None:
    path = "/api/v1/courses/1/assignments/2/submissions/3"
    canvas.reply(path, {"errors": [{"message": "boom"}]}, status=502)
    canvas.reply(path, {"id": 1})
    with pytest.raises(CanvasWriteUncertainError, match="502"):
        client_for(canvas, attempts=3).write(
            GRADE_SUBMISSION, [("submission[posted_grade]", "9")], course_id=1, assignment_id=2, user_id=3
        )
    assert [request.method for request in canvas.seen] == ["PUT"]


class RecordingLimit:
    def __init__(self) -> None:
        self.events: list[str | float] = []

    def observe(self, remaining: float) -> None:
        self.events.append(remaining)

    def throttled(self) -> None:
        self.events.append("throttled")


def test_every_answer_and_throttle_reaches_the_in_flight_limit(canvas: ScriptedCanvas) -> None:
    next_link = f'<{canvas.url}{COURSES}?page=2>; rel="next"'
    canvas.reply(COURSES, [{"id": 1}], headers={"Link": next_link, "X-Rate-Limit-Remaining": "550.0"})
    canvas.reply(COURSES, "403 Forbidden (Rate Limit Exceeded)\n", status=403)
    canvas.reply(COURSES, [{"id": 2}], headers={"X-Rate-Limit-Remaining": "480.5"})
    limit = RecordingLimit()
    client = CanvasClient(
        canvas.url,
        Tokens(),
        allow_insecure=True,
        timeout_seconds=5,
        retry=RetryPolicy(throttle_backoff_base_seconds=0.0),
        sleep=lambda _: None,
        rate_limit=limit,
    )
    assert [item["id"] for item in client.get_all(LIST_ACCOUNT_COURSES, account_id=1)] == [1, 2]
    assert limit.events == [550.0, "throttled", 480.5]
