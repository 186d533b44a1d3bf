"""Faults across components, on the local stack: real queues, pollers and child-process workers.

Each test connects its own tenant, syncs once, changes Canvas, then syncs under the fault; the export
must equal the ground truth with nothing duplicated, and (where the test watches the export while the
sync runs) no course is ever seen half-written.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any, cast

import pytest
import requests

from rostersync.models import CourseOutcome, CourseSyncMessage, RunStatus, SyncRequest, SyncTrigger
from rostersync.services import Services
from rostersync.store.queues import SyncQueues
from rostersync.sync.planner import plan_run
from rostersync.sync.reports import export_roster, run_summary
from rostersync_local.truth import expected_export
from tests.faults.conftest import (
    ExportWatcher,
    assert_matches_truth,
    half_written,
    kill,
    rosters,
    runner_pid,
    worker_hosts,
)
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def connected(stack: Stack, field: str = "sis_user_id") -> str:
    tenant_id = stack.connect_tenant("--user-id-field", field)
    stack.cli_ok("sync", "run", "--tenant", tenant_id, "--wait", "--force")
    return tenant_id


@pytest.fixture(scope="module")
def tenant(fault_stack: Stack) -> str:
    """One tenant (users identified by email) for the fast tests; each starts from what it finds stored."""
    return connected(fault_stack, "email")


def change_canvas(stack: Stack, course_ids: Sequence[int], tag: str) -> None:
    """Per course: two new students, a renamed user and a deactivated enrollment."""
    truth = stack.canvas("GET", "/_sim/ground_truth")
    for course_id in course_ids:
        for n in range(2):
            stack.canvas("POST", "/_sim/changes/enroll", json={
                "course_id": course_id,
                "user": {"first_name": f"N{n}", "last_name": tag, "sis_user_id": f"{tag}-{course_id}-{n}",
                         "email": f"{tag}.{course_id}.{n}@example.edu"},
            })  # fmt: skip
        active = [
            e for e in truth["enrollments"]
            if e["course_id"] == course_id and e["enrollment_state"] == "active"
            and e["type"] == "StudentEnrollment"
        ]  # fmt: skip
        stack.canvas(
            "POST", "/_sim/changes/rename_user", json={"user_id": active[0]["user_id"], "last_name": tag}
        )
        stack.canvas(
            "POST", "/_sim/changes/drop", json={"enrollment_id": active[1]["id"], "state": "inactive"}
        )


def synced_courses(stack: Stack, field: str) -> list[int]:
    return sorted(expected_export(stack.canvas("GET", "/_sim/ground_truth"), user_id_field=field))


def expected_rosters(stack: Stack, field: str) -> dict[int, Any]:
    return rosters(expected_export(stack.canvas("GET", "/_sim/ground_truth"), user_id_field=field))


def wait_for_run(services: Services, tenant_id: str, run_id: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = run_summary(services, tenant_id, run_id)
        if summary is not None and summary.finished:
            return summary
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not finish in {timeout} s")


def wait_until_queue_drained(stack: Stack, timeout: float = 60) -> None:
    sqs = stack.aws("sqs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack.outputs["CourseSyncQueueUrl"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}:
            return
        time.sleep(0.3)
    raise AssertionError("the course queue did not drain")


def uncommitted_items(stack: Stack, tenant_id: str) -> list[str]:
    """Roster items left uncommitted or as tombstones (a committed course has none)."""
    items = stack.aws("dynamodb").scan(TableName=stack.outputs["RosterTableName"])["Items"]
    committed = {
        item["pk"]["S"] + "#C#" + item["sk"]["S"].removeprefix("COURSE#"): int(
            item.get("gen", {"N": "0"})["N"]
        )
        for item in items
        if item["pk"]["S"] == f"T#{tenant_id}" and item["sk"]["S"].startswith("COURSE#")
    }
    return [
        f"{item['pk']['S']} {item['sk']['S']}"
        for item in items
        if item["pk"]["S"] in committed
        and (int(item.get("gen", {"N": "0"})["N"]) > committed[item["pk"]["S"]] or "deleted" in item)
    ]


def start_run(stack: Stack, tenant_id: str, *extra: str) -> str:
    return str(json.loads(stack.cli_ok("sync", "run", "--tenant", tenant_id, "--force", *extra))["run_id"])


def wait_for(condition: Any, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stalls_so_far(stack: Stack) -> int:
    return int(stack.canvas("GET", "/_sim/stats")["faults_total"]["timeout"])


def stall(stack: Stack, course_id: int, route: str, seconds: float) -> None:
    """The next request to that course's route hangs `seconds` (within the client's 20 s), then answers."""
    stack.canvas("POST", "/_sim/config", json={"timeout_stall_seconds": seconds})
    stack.canvas(
        "POST", "/_sim/faults",
        json={"kind": "timeout", "status": 504, "count": 1,
              "path_regex": f"/api/v1/courses/{course_id}/{route}$"},
    )  # fmt: skip


# -- every message delivered twice ------------------------------------------------------------------
def test_every_course_message_delivered_twice_writes_each_course_once_and_whole(
    clean_canvas: Stack, stack_services: Services, tenant: str
) -> None:
    stack, tenant_id = clean_canvas, tenant
    before = rosters(export_roster(stack_services, tenant_id)["courses"])
    change_canvas(stack, synced_courses(stack, "email")[:4], "dup")
    after = expected_rosters(stack, "email")
    sent: list[CourseSyncMessage] = []

    class TwiceQueues:
        """SQS is at-least-once: here every course message is on the queue twice, close together."""

        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def send_course_messages(self, messages: Sequence[CourseSyncMessage]) -> None:
            sent.extend(messages)
            self._inner.send_course_messages([*messages, *messages])

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    planner = dataclasses.replace(stack_services, queues=cast(SyncQueues, TwiceQueues(stack_services.queues)))
    with ExportWatcher(stack_services, tenant_id) as watcher:
        run = plan_run(planner, SyncRequest(tenant_id=tenant_id, run_id="twice", trigger=SyncTrigger.MANUAL))
        summary = wait_for_run(stack_services, tenant_id, run.run_id)
        wait_until_queue_drained(stack)
    assert len(sent) == run.courses_total == len(before) > 0
    assert (summary.run.status, summary.courses_succeeded, summary.courses_failed) == (
        RunStatus.COMPLETED, len(before), 0,
    )  # fmt: skip
    assert watcher.reads > 0 and watcher.half_written(before, after) == []
    assert_matches_truth(
        export_roster(stack_services, tenant_id), stack.canvas("GET", "/_sim/ground_truth"), "email"
    )
    assert uncommitted_items(stack, tenant_id) == []


# -- a worker crash in the middle of a course -------------------------------------------------------
def test_a_worker_killed_mid_course_is_a_failed_delivery_and_the_redelivery_syncs_it(
    clean_canvas: Stack, stack_services: Services, tenant: str
) -> None:
    stack, tenant_id = clean_canvas, tenant
    victim = synced_courses(stack, "email")[0]
    before = rosters(export_roster(stack_services, tenant_id)["courses"])
    change_canvas(stack, [victim], "crash")
    after = expected_rosters(stack, "email")
    invocations_before = _worker_stats(stack)
    stalled = stalls_so_far(stack)
    stall(stack, victim, "enrollments", 10)  # sections are read; the worker hangs on the enrollments
    with ExportWatcher(stack_services, tenant_id) as watcher:
        run_id = start_run(stack, tenant_id, "--course", str(victim))
        wait_for(lambda: stalls_so_far(stack) > stalled, what="the worker to reach the stalled page")
        hosts = worker_hosts(runner_pid(stack))
        assert hosts
        for pid in hosts:  # only this course is running: the busy host is one of these
            kill(pid)
        summary = wait_for_run(stack_services, tenant_id, run_id)
    assert (summary.courses_succeeded, summary.courses_failed) == (1, 0)
    results = stack_services.table.list_course_results(tenant_id, run_id)
    assert [(r.course_id, r.outcome, r.attempt) for r in results] == [(victim, CourseOutcome.SUCCEEDED, 2)]
    stats = _worker_stats(stack)
    assert stats["errors"] - invocations_before["errors"] >= 1  # the killed invocation: a function error
    assert watcher.half_written(before, after) == []
    truth = stack.canvas("GET", "/_sim/ground_truth")  # only the victim was synced: compare it alone
    export = export_roster(stack_services, tenant_id)
    assert_matches_truth(
        {"courses": [c for c in export["courses"] if c["canvas_id"] == victim]},
        {**truth, "courses": [c for c in truth["courses"] if c["id"] == victim]},
        "email",
    )


def _worker_stats(stack: Stack) -> dict[str, int]:
    control = json.loads((stack.state_dir / "stack.json").read_text())["control_url"]
    return dict(requests.get(f"{control}/status", timeout=10).json()["CourseSyncWorkerFunction"])


# -- a token that expires mid-sync ------------------------------------------------------------------
def test_tokens_expiring_mid_sync_are_refreshed_once_and_the_run_completes(
    clean_canvas: Stack, stack_services: Services, tenant: str
) -> None:
    stack, tenant_id = clean_canvas, tenant
    courses = synced_courses(stack, "email")
    change_canvas(stack, courses[:3], "expiry")
    client_id = _client_id(stack_services, tenant_id)
    refreshes_before = _refreshes(stack, client_id)
    stalled = stalls_so_far(stack)
    stall(stack, courses[0], "enrollments", 3)  # this course is mid-fetch when every token dies
    run_id = start_run(stack, tenant_id)
    wait_for(lambda: stalls_so_far(stack) > stalled, what="the stalled page")
    assert stack.canvas("POST", "/_sim/tokens/expire_all")["expired"] >= 1
    summary = wait_for_run(stack_services, tenant_id, run_id)
    assert (summary.courses_succeeded, summary.courses_failed) == (len(courses), 0)
    # The workers that met the 401 shared one refresh (the others waited on the lock and reused it).
    assert _refreshes(stack, client_id) - refreshes_before == 1
    assert _status(stack_services, tenant_id) == "active"
    assert_matches_truth(
        export_roster(stack_services, tenant_id), stack.canvas("GET", "/_sim/ground_truth"), "email"
    )


def _client_id(services: Services, tenant_id: str) -> str:
    stored = services.table.get_tenant(tenant_id)
    assert stored is not None and stored.client_id
    return stored.client_id


def _status(services: Services, tenant_id: str) -> str:
    stored = services.table.get_tenant(tenant_id)
    assert stored is not None
    return stored.status.value


def _refreshes(stack: Stack, client_id: str) -> int:
    return sum(g["refresh_count"] for g in stack.canvas("GET", "/_sim/tokens") if g["client_id"] == client_id)


# -- a revoked refresh token mid-run --------------------------------------------------------------
def test_a_grant_revoked_mid_run_fails_the_rest_whole_and_reauthorizing_recovers(
    clean_canvas: Stack, stack_services: Services, tenant: str
) -> None:
    stack, tenant_id = clean_canvas, tenant
    courses = synced_courses(stack, "email")
    victim = courses[0]
    before = rosters(export_roster(stack_services, tenant_id)["courses"])
    change_canvas(stack, courses, "revoked")
    after = expected_rosters(stack, "email")
    client_id = _client_id(stack_services, tenant_id)
    stalled = stalls_so_far(stack)
    stall(stack, victim, "enrollments", 3)  # sections read; the users listing comes after the revocation
    run_id = start_run(stack, tenant_id)
    wait_for(lambda: stalls_so_far(stack) > stalled, what="the stalled page")
    assert stack.canvas("POST", "/_sim/tokens/revoke", json={"client_id": client_id})["revoked"] == 1
    token_calls = stack.canvas("GET", "/_sim/stats")["by_route"].get("POST /login/oauth2/token", 0)
    summary = wait_for_run(stack_services, tenant_id, run_id)
    results = {r.course_id: r for r in stack_services.table.list_course_results(tenant_id, run_id)}
    assert results[victim].outcome is CourseOutcome.FAILED
    assert results[victim].error_code == "needs_reauthorization"
    assert summary.courses_failed >= 1 and summary.run.status is RunStatus.COMPLETED
    # No retry storm: one refused refresh settles it, the rest fail without asking Canvas for tokens.
    assert (
        stack.canvas("GET", "/_sim/stats")["by_route"].get("POST /login/oauth2/token", 0) - token_calls <= 1
    )
    assert all(r.attempt == 1 for r in results.values() if r.outcome is CourseOutcome.FAILED)
    assert _status(stack_services, tenant_id) == "needs_reauthorization"
    export = rosters(export_roster(stack_services, tenant_id)["courses"])
    assert half_written(export, before, after) == []
    assert export[victim] == before[victim]
    assert {c for c, r in results.items() if r.outcome is CourseOutcome.SUCCEEDED} == {
        c for c in courses if export[c] == after[c]
    }
    # The admin authorizes again; the next sync brings every course up to Canvas.
    assert requests.get(stack.cli_ok("tenant", "authorize", tenant_id), timeout=30).status_code == 200
    stack.cli_ok("sync", "run", "--tenant", tenant_id, "--wait", "--force")
    assert_matches_truth(
        export_roster(stack_services, tenant_id), stack.canvas("GET", "/_sim/ground_truth"), "email"
    )


# -- slow: random Canvas faults with real 20 s client timeouts, and a throttle storm ----------------
@pytest.mark.slow
def test_a_full_run_through_random_5xx_timeouts_and_resets_matches_the_ground_truth(
    clean_canvas: Stack, stack_services: Services
) -> None:
    stack = clean_canvas
    tenant_id = connected(stack)
    before = rosters(export_roster(stack_services, tenant_id)["courses"])
    change_canvas(stack, synced_courses(stack, "sis_user_id")[:5], "random")
    after = expected_rosters(stack, "sis_user_id")
    faults_before = stack.canvas("GET", "/_sim/stats")["faults_total"]
    stack.canvas("POST", "/_sim/config", json={
        "fault_rate": 0.15, "reset_rate": 0.1, "timeout_rate": 0.05, "timeout_stall_seconds": 25.0,
        "fault_seed": 7,
    })  # fmt: skip
    with ExportWatcher(stack_services, tenant_id) as watcher:
        summary = json.loads(stack.cli_ok("sync", "run", "--tenant", tenant_id, "--wait", "--force"))
    faults = stack.canvas("GET", "/_sim/stats")["faults_total"]
    assert all(faults[kind] > faults_before[kind] for kind in ("error", "reset", "timeout")), faults
    assert summary["courses_failed"] == 0 and summary["canvas_retries"] > 0
    assert watcher.half_written(before, after) == []
    assert_matches_truth(
        export_roster(stack_services, tenant_id), stack.canvas("GET", "/_sim/ground_truth"), "sis_user_id"
    )


@pytest.mark.slow
def test_a_throttle_storm_slows_the_run_but_loses_nothing(
    clean_canvas: Stack, stack_services: Services
) -> None:
    stack = clean_canvas
    tenant_id = connected(stack, "email")
    before = rosters(export_roster(stack_services, tenant_id)["courses"])
    change_canvas(stack, synced_courses(stack, "email")[:5], "storm")
    after = expected_rosters(stack, "email")
    # A nearly full bucket that leaks slowly, and on top a burst of forced 403 "Rate Limit Exceeded".
    stack.canvas("POST", "/_sim/config", json={
        "throttle": True, "throttle_high_water": 120.0, "throttle_maximum": 400.0,
        "throttle_leak_per_second": 80.0, "throttle_up_front_cost": 50.0,
    })  # fmt: skip
    stack.canvas("POST", "/_sim/faults", json={
        "kind": "throttle", "status": 403, "path_regex": "^/api/v1/courses/\\d+/", "count": 12,
    })  # fmt: skip
    stats_before = stack.canvas("GET", "/_sim/stats")
    with ExportWatcher(stack_services, tenant_id) as watcher:
        completed = stack.cli("sync", "run", "--tenant", tenant_id, "--wait", "--force")
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    stats = stack.canvas("GET", "/_sim/stats")
    assert stats["faults_total"]["throttle"] - stats_before["faults_total"]["throttle"] == 12
    assert summary["canvas_throttled"] > 0 and summary["courses_failed"] == 0
    assert watcher.half_written(before, after) == []
    assert_matches_truth(
        export_roster(stack_services, tenant_id), stack.canvas("GET", "/_sim/ground_truth"), "email"
    )
