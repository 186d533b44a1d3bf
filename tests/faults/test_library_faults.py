"""Faults at the library level: a worker dying mid-write, a stale diff losing a conditional write, and
Canvas 5xx, timeouts and connection resets with a short client timeout. In-process moto + simulator."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from rostersync.canvas.models import CanvasCourse
from rostersync.errors import RetryLaterError
from rostersync.models import CourseOutcome, CourseResult, CourseSyncMessage, Tenant
from rostersync.services import Services
from rostersync.store.keys import course_pk, tenant_pk
from rostersync.sync.course import sync_course
from rostersync.sync.reports import export_roster
from rostersync_local.canvas_sim import RunningSimulator, SimulatorConfig, serve
from rostersync_local.truth import expected_export
from tests.faults.conftest import assert_matches_truth, half_written, rosters, sim_get
from tests.integration.conftest import connect, message

pytestmark = pytest.mark.integration


class WorkerCrash(BaseException):
    """The worker's process dying: nothing in the library may catch it (it is not an Exception)."""


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve(SimulatorConfig(seed=31, courses=5, reference_year=2026)) as running:
        yield running


@pytest.fixture
def tenant(services: Services, sim: RunningSimulator) -> Tenant:
    return connect(services, sim)


def truth_of(sim: RunningSimulator) -> dict[str, Any]:
    return dict(sim_get(sim.url, "/_sim/ground_truth"))


def busiest_course(sim: RunningSimulator) -> CanvasCourse:
    truth = truth_of(sim)
    expected = expected_export(truth)
    course_id = max(expected, key=lambda c: len(expected[c]["enrollments"]))
    return CanvasCourse.model_validate(next(c for c in truth["courses"] if c["id"] == course_id))


def change(sim: RunningSimulator, route: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{sim.url}/_sim/changes/{route}", json=body, timeout=10)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def change_course(sim: RunningSimulator, course_id: int, tag: str, new_students: int = 6) -> None:
    """New students (a user and an enrollment each), a renamed user and a deactivated enrollment."""
    for n in range(new_students):
        change(
            sim,
            "enroll",
            {"course_id": course_id, "user": {"first_name": f"New{n}", "last_name": tag,
                                              "sis_user_id": f"{tag}-{n}"}},
        )  # fmt: skip
    truth = truth_of(sim)
    active = [
        e for e in truth["enrollments"]
        if e["course_id"] == course_id and e["enrollment_state"] == "active"
        and e["type"] == "StudentEnrollment"
    ]  # fmt: skip
    change(sim, "rename_user", {"user_id": active[0]["user_id"], "first_name": f"Renamed{tag}"})
    change(sim, "drop", {"enrollment_id": active[1]["id"], "state": "inactive"})


def course_roster(services: Services, tenant: Tenant, course_id: int) -> Any:
    export = export_roster(services, tenant.tenant_id)
    return rosters(export["courses"]).get(course_id)


def raw_items(services: Services, tenant: Tenant, course_id: int) -> list[dict[str, Any]]:
    table = services.table._table
    return list(
        table.query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": course_pk(tenant.tenant_id, course_id)},
            ConsistentRead=True,
        )["Items"]
    )


def committed_generation(services: Services, tenant: Tenant, course_id: int) -> int:
    row = services.table._table.get_item(
        Key={"pk": tenant_pk(tenant.tenant_id), "sk": f"COURSE#{course_id}"}, ConsistentRead=True
    )["Item"]
    return int(row.get("gen", 0))


class _CrashingBatch:
    """A batch writer that lets `survive` puts through, then the process dies."""

    def __init__(self, inner: Any, survive: int) -> None:
        self._inner, self._left = inner, survive

    def __enter__(self) -> _CrashingBatch:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)  # what boto3 had buffered is sent, as a dying worker's last flush

    def put_item(self, **kwargs: Any) -> None:
        if self._left == 0:
            raise WorkerCrash("killed mid-write")
        self._left -= 1
        self._inner.put_item(**kwargs)

    def delete_item(self, **kwargs: Any) -> None:
        self._inner.delete_item(**kwargs)


class _TableDyingMidWrite:
    def __init__(self, inner: Any, survive: int) -> None:
        self._inner, self._survive = inner, survive

    def batch_writer(self, *args: Any, **kwargs: Any) -> _CrashingBatch:
        return _CrashingBatch(self._inner.batch_writer(*args, **kwargs), self._survive)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_worker_dying_mid_write_leaves_the_previous_roster_until_a_redelivery_commits_the_new_one(
    services: Services, sim: RunningSimulator, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    course = busiest_course(sim)
    assert sync_course(services, message(tenant, course), attempt=1).outcome is CourseOutcome.SUCCEEDED
    before = course_roster(services, tenant, course.id)
    generation = committed_generation(services, tenant, course.id)
    change_course(sim, course.id, "crash")
    after = rosters(expected_export(truth_of(sim)))[course.id]
    assert after != before

    real_table = services.table._table
    monkeypatch.setattr(services.table, "_table", _TableDyingMidWrite(real_table, survive=5))
    with pytest.raises(WorkerCrash):
        sync_course(services, message(tenant, course), attempt=1)
    monkeypatch.setattr(services.table, "_table", real_table)
    # The crash came mid-write: some new items are stored, uncommitted...
    uncommitted = [item for item in raw_items(services, tenant, course.id) if item.get("gen", 0) > generation]
    assert 0 < len(uncommitted) <= 5
    # ...and every reader still sees the previous roster, whole.
    assert course_roster(services, tenant, course.id) == before

    # Redelivered while the dead worker's write lease runs: a conflict, nothing written, retried later.
    with pytest.raises(RetryLaterError):
        sync_course(services, message(tenant, course), attempt=2)
    assert course_roster(services, tenant, course.id) == before
    # SQS redelivers after the queue's visibility timeout (720 s), when the 300 s lease has run out.
    real_table.update_item(
        Key={"pk": tenant_pk(tenant.tenant_id), "sk": f"COURSE#{course.id}"},
        UpdateExpression="SET lease_until = :past",
        ExpressionAttributeValues={":past": 0},
    )
    result = sync_course(services, message(tenant, course), attempt=3)
    assert result.outcome is CourseOutcome.SUCCEEDED
    assert course_roster(services, tenant, course.id) == after
    assert half_written({course.id: course_roster(services, tenant, course.id)}, {}, {course.id: after}) == []
    leftovers = [
        item["sk"]
        for item in raw_items(services, tenant, course.id)
        if item.get("gen", 0) > committed_generation(services, tenant, course.id) or item.get("deleted")
    ]
    assert leftovers == []


def test_a_stale_diff_loses_the_conditional_write_and_the_newer_roster_stays(
    services: Services, sim: RunningSimulator, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A read Canvas, then worker B read a newer Canvas and committed first: A must not write."""
    course = busiest_course(sim)
    sync_course(services, message(tenant, course), attempt=1)
    truth = truth_of(sim)
    student = next(
        e["user_id"] for e in truth["enrollments"]
        if e["course_id"] == course.id and e["enrollment_state"] == "active"
        and e["type"] == "StudentEnrollment"
    )  # fmt: skip
    change(sim, "rename_user", {"user_id": student, "first_name": "Older"})
    real_snapshot = services.table.course_snapshot
    interleaved: list[CourseResult] = []
    readers: list[int] = []

    def snapshot_then_let_b_win(tenant_id: str, course_id: int) -> Any:
        stale = real_snapshot(tenant_id, course_id)
        readers.append(course_id)
        if len(readers) == 1:  # A has fetched "Older" and read the stored roster; now B runs whole
            change(sim, "rename_user", {"user_id": student, "first_name": "Newer"})
            interleaved.append(sync_course(services, message(tenant, course), attempt=1))
        return stale

    monkeypatch.setattr(services.table, "course_snapshot", snapshot_then_let_b_win)
    with pytest.raises(RetryLaterError, match="changed or is being written"):
        sync_course(services, message(tenant, course), attempt=1)
    monkeypatch.undo()
    assert interleaved[0].outcome is CourseOutcome.SUCCEEDED
    names = {u["canvas_id"]: u["name"] for u in course_roster(services, tenant, course.id)["users"]}
    assert names[student].startswith("Newer")
    results = services.table.list_course_results(tenant.tenant_id, "run-1")
    assert [(r.course_id, r.outcome) for r in results if r.course_id == course.id] == [
        (course.id, CourseOutcome.SUCCEEDED)  # A's conflict never overwrites B's success
    ]
    # A's redelivery reads Canvas again and finds nothing left to write.
    again = sync_course(services, message(tenant, course), attempt=2)
    assert again.outcome is CourseOutcome.SUCCEEDED and again.changes.created + again.changes.updated == 0
    assert_matches_truth(
        {
            "courses": [
                c for c in export_roster(services, tenant.tenant_id)["courses"] if c["canvas_id"] == course.id
            ]
        },
        {**truth_of(sim), "courses": [c for c in truth_of(sim)["courses"] if c["id"] == course.id]},
        "sis_user_id",
    )


def sync_with_redeliveries(services: Services, course_message: CourseSyncMessage) -> CourseResult:
    """sync_course as the queue drives it: RetryLaterError sends the message back, up to maxReceiveCount."""
    for attempt in range(1, services.settings.course_sync_max_receive_count + 1):
        try:
            return sync_course(services, course_message, attempt=attempt)
        except RetryLaterError:
            continue
    raise AssertionError("a final attempt never raises RetryLaterError")


def test_canvas_5xx_timeouts_and_resets_still_give_the_ground_truth(
    services: Services, sim: RunningSimulator
) -> None:
    tenant = connect(services, sim)
    quick = dataclasses.replace(
        services, settings=services.settings.model_copy(update={"canvas_timeout_seconds": 0.5})
    )
    published = [
        CanvasCourse.model_validate(c) for c in truth_of(sim)["courses"] if c["workflow_state"] == "available"
    ]
    for course in published:
        sync_course(services, message(tenant, course), attempt=1)
    before = rosters(export_roster(services, tenant.tenant_id)["courses"])
    for course in published[:2]:
        change_course(sim, course.id, f"flaky{course.id}", new_students=2)
    faults_before = sim_get(sim.url, "/_sim/stats")["faults_total"]
    requests.post(
        f"{sim.url}/_sim/config",
        json={"fault_rate": 0.2, "timeout_rate": 0.1, "reset_rate": 0.15, "timeout_stall_seconds": 1.0,
              "fault_seed": 4},
        timeout=10,
    )  # fmt: skip
    try:
        results = [sync_with_redeliveries(quick, message(tenant, course)) for course in published]
    finally:
        requests.post(
            f"{sim.url}/_sim/config",
            json={"fault_rate": 0.0, "timeout_rate": 0.0, "reset_rate": 0.0, "timeout_stall_seconds": 30.0},
            timeout=10,
        )
    faults = sim_get(sim.url, "/_sim/stats")["faults_total"]
    injected = {kind: faults[kind] - faults_before[kind] for kind in ("error", "timeout", "reset")}
    assert all(count > 0 for count in injected.values()), injected
    assert sum(result.canvas_retries for result in results) > 0
    export = export_roster(services, tenant.tenant_id)
    after = rosters(expected_export(truth_of(sim)))
    failed = {result.course_id for result in results if result.outcome is not CourseOutcome.SUCCEEDED}
    # A course that failed for good keeps its previous roster; every other one has its whole new roster.
    assert half_written(rosters(export["courses"]), before, after) == []
    assert {c for c, seen in rosters(export["courses"]).items() if seen != after[c]} <= failed
    assert not failed, [(r.course_id, r.error_code) for r in results if r.course_id in failed]
    assert_matches_truth(export, truth_of(sim), "sis_user_id")
