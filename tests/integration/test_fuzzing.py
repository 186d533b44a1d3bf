"""Property-based fuzzing of every route that takes input, over HTTP against the running stack.

Whatever arrives, the answer is a deliberate client error or success, never a server error, and a
refused URL never reaches the network. Examples are few per route to keep the suite fast; hypothesis
shrinks any failure to a small reproducer.
"""

import json
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import Stack
from tests.unit.test_canvas_urls import UNSAFE_CANVAS_URLS

pytestmark = pytest.mark.integration

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CLIENT_ERRORS = {400, 401, 403, 404, 409, 413, 415, 429}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def fields_of(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the route's own field names (so validation goes deep), odd values, and stray keys."""
    return st.dictionaries(
        st.sampled_from([*names, "tenant_id", "extra"]), json_values, max_size=len(names) + 1
    )


@pytest.fixture(scope="module")
def fuzzed_tenant(stack: Stack) -> dict[str, str]:
    """A connected tenant of its own, so fuzzed writes touch nothing another test reads."""
    tenant_id = stack.connect_tenant()
    token = stack.cli_ok("admin", "token", "--tenant", tenant_id)
    return {"tenant_id": tenant_id, "Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def secure_tenant(stack: Stack) -> dict[str, str]:
    """A tenant as production has them: created by an operator, http and private addresses not allowed."""
    operator = stack.cli_ok("admin", "token", "--tenant", "operators", "--operator")
    created = requests.post(
        f"{stack.api_url}/admin/tenants",
        json={"name": "Secure"},
        headers={"Authorization": f"Bearer {operator}"},
        timeout=30,
    ).json()
    token = stack.cli_ok("admin", "token", "--tenant", created["tenant_id"])
    return {"tenant_id": created["tenant_id"], "Authorization": f"Bearer {token}"}


def post_json(stack: Stack, path: str, auth: dict[str, str], body: Any) -> requests.Response:
    """Send `body` as JSON, or as it is when it is raw bytes (labelled JSON all the same)."""
    return requests.post(
        f"{stack.api_url}{path}",
        data=body if isinstance(body, bytes) else json.dumps(body),
        headers={"Authorization": auth["Authorization"], "Content-Type": "application/json"},
        timeout=60,
    )


def assert_refused_or_done(answer: requests.Response) -> None:
    assert answer.status_code < 500, (
        f"{answer.request.method} {answer.url}: {answer.status_code} {answer.text}"
    )
    if answer.status_code >= 400 and answer.headers.get("Content-Type", "").startswith("application/json"):
        assert answer.json().get("error") or answer.json().get("message")


ADMIN_FORMS = {
    "/admin/settings/canvas": ["canvas_url", "client_id", "client_secret"],
    "/admin/courses/sync-list": ["mode", "csv", "confirm"],
    "/admin/courses/all": ["account_id"],
    "/admin/grades": ["course_id", "assignment", "grades"],
    "/admin/sync": ["course_ids"],
}


@pytest.mark.parametrize("path", sorted(ADMIN_FORMS))
def test_admin_forms_answer_any_body_with_a_client_error_or_success(
    stack: Stack, fuzzed_tenant: dict[str, str], path: str
) -> None:
    @FUZZ
    @given(body=fields_of(ADMIN_FORMS[path]) | json_values | st.binary(max_size=100))
    def check(body: Any) -> None:
        assert_refused_or_done(post_json(stack, path, fuzzed_tenant, body))

    check()


@FUZZ
@given(course=st.text(max_size=12), decision=st.text(max_size=12))
def test_hold_decisions_with_any_path_are_refused_cleanly(
    stack: Stack, fuzzed_tenant: dict[str, str], course: str, decision: str
) -> None:
    path = f"/admin/holds/{quote(course, safe='')}/{quote(decision, safe='')}"
    assert_refused_or_done(post_json(stack, path, fuzzed_tenant, {}))


@FUZZ
@given(body=st.binary(max_size=300) | json_values.map(json.dumps))
def test_live_event_intake_answers_garbage_with_a_client_error(stack: Stack, body: bytes | str) -> None:
    answer = requests.post(f"{stack.api_url}/live-events", data=body, timeout=60)
    assert_refused_or_done(answer)


@FUZZ
@given(state=st.text(max_size=80), code=st.text(max_size=40))
def test_oauth_routes_refuse_any_forged_state(stack: Stack, state: str, code: str) -> None:
    start = requests.get(f"{stack.api_url}/oauth/start", params={"state": state}, timeout=60)
    assert start.status_code == 400
    callback = requests.get(
        f"{stack.api_url}/oauth/callback", params={"state": state, "code": code}, timeout=60
    )
    assert callback.status_code == 400


def test_oversized_bodies_are_refused_before_any_work(stack: Stack, fuzzed_tenant: dict[str, str]) -> None:
    huge_csv = {"mode": "add", "csv": "1\n" * 600_000}
    assert post_json(stack, "/admin/courses/sync-list", fuzzed_tenant, huge_csv).status_code == 413
    event = json.dumps({"metadata": {"event_name": "enrollment_created"}, "body": {"x": "y" * 70_000}})
    assert requests.post(f"{stack.api_url}/live-events", data=event, timeout=60).status_code == 413


@pytest.mark.parametrize("url", UNSAFE_CANVAS_URLS)
def test_every_unsafe_canvas_url_is_refused_where_an_admin_types_one(
    stack: Stack, secure_tenant: dict[str, str], url: str
) -> None:
    """The client issue's SSRF list, through the settings page's route."""
    form = {"canvas_url": url, "client_id": "10000000000001", "client_secret": "s"}
    answer = post_json(stack, "/admin/settings/canvas", secure_tenant, form)
    assert answer.status_code == 400 and answer.json()["field"] == "canvas_url", answer.text
