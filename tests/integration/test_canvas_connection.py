"""Tokens, scopes, pagination and the per-tenant cap, over HTTP to the simulator and moto's server.

The library is called directly (no runner), so each case stays small and fast.
"""

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from pydantic import SecretStr

from rostersync.authorization import begin_authorization, canvas_authorize_redirect, complete_authorization
from rostersync.canvas.errors import AuthorizationError, CanvasNotConfiguredError, CanvasUnavailableError
from rostersync.canvas.models import CanvasCourse
from rostersync.canvas.scopes import LIST_COURSE_ENROLLMENTS, required_scopes
from rostersync.connection import SharedCanvasLimit, canvas_slot, token_source_for
from rostersync.models import (
    CourseOutcome,
    CourseSyncMessage,
    RunStatus,
    SyncRequest,
    SyncRun,
    SyncTrigger,
    Tenant,
)
from rostersync.services import Services
from rostersync.sync.course import course_batch, sync_course
from rostersync.sync.planner import plan_run
from rostersync.sync.reports import export_roster
from rostersync.tenants import CanvasSettingsError, TenantError, save_canvas_settings
from rostersync_local.canvas_sim import RunningSimulator, SimulatorConfig, serve
from rostersync_local.truth import differences, expected_export
from tests.integration.conftest import REDIRECT_URI, calls_outside_the_manifest, connect, message, new_tenant

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve(SimulatorConfig(seed=5, courses=6, reference_year=2026)) as running:
        yield running
        assert calls_outside_the_manifest(running.url) == []


@pytest.fixture
def tenant(services: Services, sim: RunningSimulator) -> Tenant:
    return connect(services, sim)


def a_course(sim: RunningSimulator) -> CanvasCourse:
    truth = requests.get(f"{sim.url}/_sim/ground_truth", timeout=10).json()
    return CanvasCourse.model_validate(
        next(c for c in truth["courses"] if c["workflow_state"] == "available")
    )


def api_status(sim: RunningSimulator, token: str) -> int:
    return requests.get(
        f"{sim.url}/api/v1/accounts", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).status_code


def token_requests(sim: RunningSimulator) -> int:
    stats = requests.get(f"{sim.url}/_sim/stats", timeout=10).json()
    return int(stats["by_route"].get("POST /login/oauth2/token", 0))


def set_expiry(services: Services, tenant: Tenant, when: datetime) -> None:
    credentials = services.secrets.read(tenant.tenant_id, fresh=True)
    # An hour-long token (Canvas's lifetime) that ends at `when`.
    update = {"access_token_expires_at": when, "access_token_issued_at": when - timedelta(hours=1)}
    services.secrets.write(tenant.tenant_id, credentials.model_copy(update=update))


def test_a_token_near_expiry_is_refreshed_ahead_and_the_refresh_token_kept(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    before = services.secrets.read(tenant.tenant_id, fresh=True)
    set_expiry(services, tenant, datetime.now(UTC) + timedelta(seconds=60))  # inside the 5-minute margin
    result = sync_course(services, message(tenant, a_course(sim)), attempt=1)
    assert result.outcome is CourseOutcome.SUCCEEDED
    after = services.secrets.read(tenant.tenant_id, fresh=True)
    assert after.access_token != before.access_token
    assert after.refresh_token == before.refresh_token
    assert after.access_token_expires_at and after.access_token_expires_at > datetime.now(UTC) + timedelta(
        minutes=50
    )
    assert before.access_token is not None and api_status(sim, before.access_token.get_secret_value()) == 401


def test_concurrent_workers_refresh_once_and_share_the_token(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    set_expiry(services, tenant, datetime.now(UTC) - timedelta(seconds=1))
    tokens: list[str] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        source = token_source_for(services, tenant)
        barrier.wait()
        tokens.append(source.access_token())

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Had two workers refreshed, the first token would have been killed by the second refresh.
    assert len(tokens) == 6 and len(set(tokens)) == 1
    assert api_status(sim, tokens[0]) == 200


def test_concurrent_workers_meeting_a_revoked_grant_ask_canvas_once(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    requests.post(f"{sim.url}/_sim/tokens/revoke", json={"client_id": tenant.client_id}, timeout=10)
    set_expiry(services, tenant, datetime.now(UTC) - timedelta(seconds=1))
    refreshes_before = token_requests(sim)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        source = token_source_for(services, tenant)
        barrier.wait()
        try:
            source.access_token()
            outcomes.append("token")
        except AuthorizationError:
            outcomes.append("authorize again")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == ["authorize again"] * 4
    # The workers queued on the refresh lock learn of the refusal from the tenant, not from Canvas again.
    assert token_requests(sim) - refreshes_before == 1


def test_a_token_canvas_expired_early_is_renewed_on_401(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    before = services.secrets.read(tenant.tenant_id, fresh=True).access_token
    refreshes_before = token_requests(sim)
    requests.post(f"{sim.url}/_sim/tokens/expire_all", timeout=10)
    result = sync_course(services, message(tenant, a_course(sim)), attempt=1)
    assert result.outcome is CourseOutcome.SUCCEEDED
    assert result.canvas_requests >= 3  # the 401, then sections and enrollments
    assert token_requests(sim) - refreshes_before == 1
    assert services.secrets.read(tenant.tenant_id, fresh=True).access_token != before


def test_a_short_lived_token_is_not_refreshed_on_every_request(
    services: Services, sim: RunningSimulator
) -> None:
    """A Canvas (or proxy) issuing 20-second tokens: a fixed 5-minute margin would refresh each call."""
    requests.post(f"{sim.url}/_sim/config", json={"token_ttl_seconds": 20}, timeout=10)
    try:
        tenant = connect(services, sim)
        refreshes_before = token_requests(sim)
        course = message(tenant, a_course(sim))
        results = [sync_course(services, course, attempt=1) for _ in range(4)]
    finally:
        requests.post(f"{sim.url}/_sim/config", json={"token_ttl_seconds": 3600}, timeout=10)
    assert all(result.outcome is CourseOutcome.SUCCEEDED for result in results)
    assert sum(result.canvas_requests for result in results) >= 8
    # Well inside the token's 20 s, so no refresh at all (the fixed margin made one per request).
    assert token_requests(sim) - refreshes_before == 0


def test_a_revoked_grant_stops_the_tenant_without_a_retry_storm(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    token = services.secrets.read(tenant.tenant_id, fresh=True).access_token
    assert token is not None
    requests.delete(
        f"{sim.url}/login/oauth2/token",
        headers={"Authorization": f"Bearer {token.get_secret_value()}"},
        timeout=10,
    )
    result = sync_course(services, message(tenant, a_course(sim)), attempt=1)  # raises nothing: no retry
    assert (result.outcome, result.error_code) == (CourseOutcome.FAILED, "needs_reauthorization")
    stored = services.table.get_tenant(tenant.tenant_id)
    assert stored is not None and stored.status.value == "needs_reauthorization"
    assert stored.status_reason and "invalid_request" in stored.status_reason
    before = requests.get(f"{sim.url}/_sim/stats", timeout=10).json()["requests_total"]
    run = plan_run(
        services, SyncRequest(tenant_id=tenant.tenant_id, run_id="run-after", trigger=SyncTrigger.SCHEDULE)
    )
    assert (run.status, run.error_code) == (RunStatus.FAILED, "needs_reauthorization")
    assert requests.get(f"{sim.url}/_sim/stats", timeout=10).json()["requests_total"] == before


def test_a_missing_scope_is_named_and_not_retried(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    narrow = [scope for scope in required_scopes() if scope != LIST_COURSE_ENROLLMENTS.scope]
    issued = sim.create_token(scopes=narrow)
    credentials = services.secrets.read(tenant.tenant_id, fresh=True)
    services.secrets.write(
        tenant.tenant_id,
        credentials.model_copy(
            update={
                "access_token": SecretStr(issued["access_token"]),
                "access_token_expires_at": datetime.now(UTC) + timedelta(hours=1),
            }
        ),
    )
    result = sync_course(services, message(tenant, a_course(sim)), attempt=1)
    assert (result.outcome, result.error_code) == (CourseOutcome.FAILED, "scope_missing")
    assert LIST_COURSE_ENROLLMENTS.scope in (result.error_message or "")
    stored = services.secrets.read(tenant.tenant_id, fresh=True).access_token
    assert (
        stored is not None and stored.get_secret_value() == issued["access_token"]
    )  # no refresh was attempted


def test_small_page_caps_and_bookmarks_still_give_the_whole_roster(services: Services) -> None:
    with serve(
        SimulatorConfig(seed=9, courses=4, default_per_page=5, max_per_page=7, reference_year=2026)
    ) as small_pages:
        tenant = connect(services, small_pages)
        truth = requests.get(f"{small_pages.url}/_sim/ground_truth", timeout=10).json()
        expected = expected_export(truth, user_id_field="sis_user_id")
        for course in truth["courses"]:
            if course["id"] in expected:
                result = sync_course(
                    services, message(tenant, CanvasCourse.model_validate(course)), attempt=1
                )
                assert result.outcome is CourseOutcome.SUCCEEDED
                assert result.canvas_requests > 2  # more than one page each
        assert differences(export_roster(services, tenant.tenant_id), expected) == []


def test_the_per_tenant_cap_holds_across_workers_and_frees_on_release(
    services: Services, tenant: Tenant
) -> None:
    with canvas_slot(services, tenant.tenant_id) as first, canvas_slot(services, tenant.tenant_id) as second:
        assert {first, second} == {0, 1}
        with pytest.raises(CanvasUnavailableError, match="slots"), canvas_slot(services, tenant.tenant_id):
            pass
    with canvas_slot(services, tenant.tenant_id) as again:
        assert again in {0, 1}


def test_a_slot_for_several_requests_counts_that_many_against_the_limit(
    services: Services, tenant: Tenant
) -> None:
    # the fixture's limit of 2 holds one course reading its two lists at once
    with canvas_slot(services, tenant.tenant_id, requests=2) as only:
        assert only == 0
        with (
            pytest.raises(CanvasUnavailableError, match="all 1 Canvas slots"),
            canvas_slot(services, tenant.tenant_id, requests=2),
        ):
            pass


def test_workers_share_the_in_flight_limit_through_the_table(services: Services, tenant: Tenant) -> None:
    now = [0.0]
    first = SharedCanvasLimit(services, tenant.tenant_id, clock=lambda: now[0])
    second = SharedCanvasLimit(services, tenant.tenant_id, clock=lambda: now[0])
    assert first.current() == second.current() == 2  # nothing stored yet: the configured start
    answers = 0
    while first.current() < 5 and answers < 20:  # roomy answers: about one more per round of answers
        first.observe(500.0)
        answers += 1
    assert first.current() == 5 and services.table.canvas_limit(tenant.tenant_id) == 5
    assert second.current() == 2  # read a moment ago: not again before REREAD_SECONDS
    now[0] += SharedCanvasLimit.REREAD_SECONDS
    assert second.current() == 5
    second.throttled()
    now[0] += SharedCanvasLimit.REREAD_SECONDS
    assert first.current() == 2 and services.table.canvas_limit(tenant.tenant_id) == 2


def test_a_crashed_workers_slot_is_reclaimed_when_its_lease_ends(services: Services, tenant: Tenant) -> None:
    assert services.table.acquire_canvas_slot(tenant.tenant_id, 0, "crashed", lease_seconds=-1)
    assert services.table.acquire_canvas_slot(tenant.tenant_id, 1, "busy", lease_seconds=60)
    with canvas_slot(services, tenant.tenant_id) as slot:
        assert slot == 0
    services.table.release_canvas_slot(tenant.tenant_id, 1, "busy")


def test_workers_sharing_a_tenant_raise_its_canvas_concurrency_without_being_throttled(
    services: Services,
) -> None:
    # Canvas's documented throttle (server-time costs, its default bucket), 250 ms latency, and ten
    # workers syncing one tenant's courses at once (waiting for a slot as long as a worker does): the
    # in-flight limit starts at the fixture's 2. The latency is long enough for requests to overlap even
    # when this process's threads get little CPU (with 100 ms, another test process beside it once kept
    # the peak at 3 while the limit grew past it).
    services = Services.from_settings(services.settings.model_copy(update={"canvas_slot_wait_seconds": 60.0}))
    config = SimulatorConfig(seed=11, courses=24, reference_year=2026, throttle=True, latency_ms=250)
    with serve(config) as busy:
        tenant = connect(services, busy)
        truth = requests.get(f"{busy.url}/_sim/ground_truth", timeout=10).json()
        courses = [
            CanvasCourse.model_validate(c) for c in truth["courses"] if c["workflow_state"] == "available"
        ]
        requests.post(f"{busy.url}/_sim/stats/reset", timeout=10)
        with ThreadPoolExecutor(max_workers=10) as workers:
            results = list(
                workers.map(lambda course: sync_course(services, message(tenant, course), attempt=1), courses)
            )
        stats = requests.get(f"{busy.url}/_sim/stats", timeout=10).json()
    assert {result.outcome for result in results} == {CourseOutcome.SUCCEEDED}
    assert stats["throttled_total"] == 0 and sum(result.canvas_throttled for result in results) == 0
    assert stats["peak_in_flight"] > 3  # the old fixed cap: 3 workers, one request each
    limit = services.table.canvas_limit(tenant.tenant_id)
    assert limit is not None and limit > 3


def test_a_batch_reads_its_courses_from_canvas_at_once(services: Services) -> None:
    # A limit of 8 holds four courses reading their two lists at once; Canvas answers in 150 ms.
    roomy = services.settings.model_copy(update={"canvas_concurrency_per_tenant": 8})
    services = Services.from_settings(roomy)
    with serve(SimulatorConfig(seed=12, courses=8, reference_year=2026, latency_ms=150)) as slow:
        tenant = connect(services, slow)
        truth = requests.get(f"{slow.url}/_sim/ground_truth", timeout=10).json()
        courses = [
            CanvasCourse.model_validate(c) for c in truth["courses"] if c["workflow_state"] == "available"
        ][:4]
        requests.post(f"{slow.url}/_sim/stats/reset", timeout=10)
        with course_batch(services, [message(tenant, course) for course in courses]) as batch:
            results = [batch.sync(message(tenant, course), attempt=1) for course in courses]
        stats = requests.get(f"{slow.url}/_sim/stats", timeout=10).json()
    assert len(courses) == 4 and {result.outcome for result in results} == {CourseOutcome.SUCCEEDED}
    assert stats["peak_in_flight"] > 2  # one course alone has its two lists in flight at most
    assert sum(result.canvas_requests for result in results) == stats["requests_total"]


def test_threads_of_one_process_wait_for_a_slot_without_polling_the_table(
    services: Services, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another worker holds the tenant's only slot (limit 2, two requests a slot) for a second while four
    # threads of this process want one: one of them looks for it, the others queue in the process.
    services = Services.from_settings(services.settings.model_copy(update={"canvas_slot_wait_seconds": 10.0}))
    assert services.table.acquire_canvas_slot(tenant.tenant_id, 0, "another worker", lease_seconds=60)
    attempts = []
    acquire = services.table.acquire_canvas_slot

    def counted(*args: object, **kwargs: object) -> bool:
        attempts.append(args)
        return acquire(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services.table, "acquire_canvas_slot", counted)

    def take_a_slot(_: int) -> int:
        with canvas_slot(services, tenant.tenant_id, requests=2) as slot:
            return slot

    with ThreadPoolExecutor(max_workers=4) as threads:
        taken = threads.map(take_a_slot, range(4))
        threading.Event().wait(1.0)
        attempts_while_held = len(attempts)
        services.table.release_canvas_slot(tenant.tenant_id, 0, "another worker")
        assert list(taken) == [0, 0, 0, 0]
    # one poller, a round each 0.2-0.5 s: at most 6 attempts in the second, 7 if the release lands on a
    # round's edge (four pollers would make 12 or more)
    assert 1 <= attempts_while_held <= 7


def test_the_export_carries_no_token(services: Services, sim: RunningSimulator, tenant: Tenant) -> None:
    sync_course(services, message(tenant, a_course(sim)), attempt=1)
    credentials = services.secrets.read(tenant.tenant_id, fresh=True)
    exported = json.dumps(export_roster(services, tenant.tenant_id))
    assert credentials.access_token and credentials.access_token.get_secret_value() not in exported


def test_a_wrong_client_secret_at_refresh_time_needs_reauthorization(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    credentials = services.secrets.read(tenant.tenant_id, fresh=True)
    services.secrets.write(
        tenant.tenant_id,
        credentials.model_copy(
            update={
                "client_secret": SecretStr("rotated-in-canvas"),
                "access_token_expires_at": datetime.now(UTC) - timedelta(seconds=1),
            }
        ),
    )
    result = sync_course(services, message(tenant, a_course(sim)), attempt=1)
    assert (result.outcome, result.error_code) == (CourseOutcome.FAILED, "needs_reauthorization")
    stored = services.table.get_tenant(tenant.tenant_id)
    assert stored is not None and stored.status_reason == "token refresh refused: invalid_client"


def test_an_unknown_authorization_code_changes_nothing(services: Services, sim: RunningSimulator) -> None:
    tenant = new_tenant(services, sim, "Bad code")
    state = parse_qs(
        urlsplit(begin_authorization(services, tenant.tenant_id, "http://127.0.0.1:9", "operator")).query
    )["state"][0]
    redirect = canvas_authorize_redirect(services, state, REDIRECT_URI)
    with pytest.raises(TenantError, match="authorization_code not found"):
        complete_authorization(services, state, "not-a-code", None, redirect.browser_binding)
    assert services.table.get_tenant(tenant.tenant_id) == tenant
    assert services.secrets.read(tenant.tenant_id, fresh=True).access_token is None


def test_an_expired_oauth_state_is_refused_at_the_start_and_at_the_callback(
    services: Services, sim: RunningSimulator
) -> None:
    tenant = new_tenant(services, sim, "Slow admin")
    services.table.put_oauth_state(tenant.tenant_id, "stale", -1, "admin@x")
    with pytest.raises(TenantError, match="expired"):
        canvas_authorize_redirect(services, f"{tenant.tenant_id}.stale", REDIRECT_URI)

    start = begin_authorization(services, tenant.tenant_id, "http://127.0.0.1:9", "admin@x")
    state = parse_qs(urlsplit(start).query)["state"][0]
    redirect = canvas_authorize_redirect(services, state, REDIRECT_URI)
    code = parse_qs(
        urlsplit(requests.get(redirect.location, allow_redirects=False, timeout=10).headers["Location"]).query
    )["code"][0]
    # Ten minutes pass before Canvas sends the admin back.
    services.table._table.update_item(
        Key={"pk": f"T#{tenant.tenant_id}", "sk": f"OAUTH#{state.partition('.')[2]}"},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": int(datetime.now(UTC).timestamp()) - 1},
    )
    with pytest.raises(TenantError, match="expired"):
        complete_authorization(services, state, code, None, redirect.browser_binding)
    assert services.secrets.read(tenant.tenant_id, fresh=True).access_token is None


def test_a_run_closes_when_its_last_course_is_final_and_not_before(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    truth = requests.get(f"{sim.url}/_sim/ground_truth", timeout=10).json()
    available = [course for course in truth["courses"] if course["workflow_state"] == "available"]
    synced = [CanvasCourse.model_validate(course) for course in available[:2]]
    run = SyncRun(
        tenant_id=tenant.tenant_id, run_id="r-close", trigger=SyncTrigger.MANUAL, status=RunStatus.RUNNING,
        courses_total=2,
    )  # fmt: skip
    services.table.put_run(run)
    services.table.put_pending_courses(tenant.tenant_id, run.run_id, [course.id for course in synced])
    first = CourseSyncMessage(tenant_id=tenant.tenant_id, run_id=run.run_id, course=synced[0])
    second = CourseSyncMessage(tenant_id=tenant.tenant_id, run_id=run.run_id, course=synced[1])

    def status() -> RunStatus:
        stored = services.table.get_run(tenant.tenant_id, run.run_id)
        assert stored is not None
        return stored.status

    assert sync_course(services, first, attempt=1).outcome is CourseOutcome.SUCCEEDED
    assert sync_course(services, first, attempt=2).outcome is CourseOutcome.SUCCEEDED  # a redelivery
    assert status() is RunStatus.RUNNING
    assert sync_course(services, second, attempt=1).outcome is CourseOutcome.SUCCEEDED
    assert status() is RunStatus.COMPLETED
    assert not services.table.has_pending_courses(tenant.tenant_id, run.run_id)


@contextmanager
def listening_host() -> Iterator[tuple[str, list[str]]]:
    """Another host an attacker controls: records every request it receives."""
    received: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(f"POST {self.path}")
            self.send_response(400)
            self.end_headers()

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()


def test_a_new_canvas_url_without_the_secret_is_refused_and_the_secret_never_leaves(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    with listening_host() as (other_host, received):
        with pytest.raises(CanvasSettingsError) as refused:
            save_canvas_settings(
                services, tenant.tenant_id, canvas_url=other_host, client_id=str(tenant.client_id),
                client_secret="",
            )  # fmt: skip
        assert refused.value.field == "client_secret"
        with pytest.raises(CanvasSettingsError):
            save_canvas_settings(
                services, tenant.tenant_id, canvas_url=sim.url, client_id="42", client_secret=None
            )
        stored = services.table.get_tenant(tenant.tenant_id)
        assert stored is not None and (stored.canvas_url, stored.client_id) == (
            tenant.canvas_url,
            tenant.client_id,
        )
        # However the tenant's row came to name another host, the secret is not sent there.
        services.table.update_tenant_status(stored.model_copy(update={"canvas_url": other_host}))
        set_expiry(services, tenant, datetime.now(UTC) - timedelta(seconds=1))
        with pytest.raises(CanvasNotConfiguredError, match="another Canvas URL"):
            token_source_for(services, stored.model_copy(update={"canvas_url": other_host})).access_token()
        assert received == []


def test_a_new_canvas_url_with_its_secret_is_saved_for_that_host(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    with listening_host() as (other_host, _):
        saved = save_canvas_settings(
            services, tenant.tenant_id, canvas_url=other_host, client_id="77", client_secret="new-secret"
        )
    assert (saved.canvas_url, saved.client_id, saved.status.value) == (
        other_host,
        "77",
        "pending_authorization",
    )
    credentials = services.secrets.read(tenant.tenant_id, fresh=True)
    assert (credentials.canvas_origin, credentials.client_id) == (other_host, "77")
    assert credentials.client_secret.get_secret_value() == "new-secret"
    assert credentials.access_token is None and credentials.refresh_token is None
