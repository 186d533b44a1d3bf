"""Roster rules and safety nets (issue 4), over HTTP to an in-process simulator whose data we change."""

import csv
import dataclasses
import io
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from rostersync.canvas.models import CanvasCourse
from rostersync.connection import canvas_client_for
from rostersync.models import (
    CourseOutcome,
    CourseSyncMessage,
    HoldStatus,
    RosterEnrollment,
    RosterRole,
    RunSummary,
    SyncRequest,
    SyncTrigger,
    Tenant,
)
from rostersync.selftest import CheckStatus, run_self_test
from rostersync.services import Services
from rostersync.store.queues import SyncQueues
from rostersync.sync.course import sync_course
from rostersync.sync.holds import approve_hold, decided_holds, pending_holds, reject_hold
from rostersync.sync.planner import list_synced_courses, plan_run
from rostersync.sync.reports import export_roster, run_summary, sync_errors, sync_errors_csv
from rostersync.sync.requesting import new_run_id, request_scheduled_syncs
from rostersync.tenant_settings import (
    ConfirmationNeededError,
    SyncListMode,
    configure_tenant,
    update_sync_list,
)
from rostersync.tenants import CanvasSettingsError
from rostersync_local.canvas_sim import RunningSimulator, SimulatorConfig, serve
from rostersync_local.canvas_sim.model import Enrollment, Institution
from tests.integration.conftest import connect, message

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve(SimulatorConfig(seed=21, courses=12, reference_year=2026)) as running:
        yield running


@pytest.fixture
def tenant(services: Services, sim: RunningSimulator) -> Tenant:
    return connect(services, sim)


def change(sim: RunningSimulator, edit: Callable[[Institution], Any]) -> None:
    with sim.state.lock:
        edit(sim.state.institution)
        sim.state.institution.reindex()


_used_courses: set[int] = set()


def fresh_course(sim: RunningSimulator) -> CanvasCourse:
    """A published course no other test in this module has changed, with many active students."""
    institution = sim.state.institution
    candidates = [
        course
        for course in institution.courses
        if course.db_state == "available" and course.id not in _used_courses
    ]
    course = max(candidates, key=lambda c: len(active_students(institution, c.id)))
    _used_courses.add(course.id)
    return CanvasCourse(
        id=course.id, name=course.name, workflow_state="available", sis_course_id=course.sis_course_id
    )


def active_students(institution: Institution, course_id: int) -> list[Enrollment]:
    return [
        e
        for e in institution.enrollments_by_course.get(course_id, [])
        if e.type == "StudentEnrollment"
        and e.state == "active"
        and institution.roles_by_id[e.role_id].name == "StudentEnrollment"
    ]


def delete(enrollments: list[Enrollment]) -> None:
    for enrollment in enrollments:
        enrollment.state = "deleted"


def stored_enrollments(services: Services, tenant: Tenant, course_id: int) -> dict[int, RosterEnrollment]:
    items = services.table.course_items(tenant.tenant_id, course_id)
    return {
        enrollment.canvas_id: enrollment
        for enrollment in (
            RosterEnrollment.model_validate_json(i.data)
            for sk, i in items.items()
            if sk.startswith("ENROLLMENT#")
        )
    }


def sync(services: Services, tenant: Tenant, course: CanvasCourse, run_id: str) -> CourseOutcome:
    return sync_course(
        services, message(tenant, course).model_copy(update={"run_id": run_id}), attempt=1
    ).outcome


def test_a_mass_drop_waits_for_approval_while_instructor_rights_go_at_once(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    course = fresh_course(sim)
    assert sync(services, tenant, course, "r1") is CourseOutcome.SUCCEEDED
    active_before = sum(e.active for e in stored_enrollments(services, tenant, course.id).values())
    institution = sim.state.institution
    students = active_students(institution, course.id)
    dropped = students[: len(students) // 2]
    teacher = next(e for e in institution.enrollments_by_course[course.id] if e.type == "TeacherEnrollment")
    demoted = replace(
        teacher,
        id=99_001,
        type="StudentEnrollment",
        role_id=next(r.id for r in institution.roles if r.name == "StudentEnrollment"),
    )

    def drop_half_and_demote(data: Institution) -> None:
        for enrollment in dropped:
            enrollment.state = "deleted"
        teacher.state = "deleted"  # Canvas changes a role by replacing the enrollment
        data.enrollments.append(demoted)

    change(sim, drop_half_and_demote)
    assert sync(services, tenant, course, "r2") is CourseOutcome.HELD
    stored = stored_enrollments(services, tenant, course.id)
    assert all(stored[e.id].active for e in dropped), "held drops must not be applied"
    assert not stored[teacher.id].active and stored[teacher.id].dropped_reason == "not_in_canvas"
    assert stored[demoted.id].active and stored[demoted.id].roster_role is RosterRole.STUDENT
    (hold,) = [h for h in pending_holds(services, tenant.tenant_id) if h.course_id == course.id]
    assert hold.student_drops == len(dropped) and hold.active_before == active_before
    assert [e.code for e in sync_errors(services, tenant.tenant_id, "r2") if e.user_id is None] == [
        "held_for_approval"
    ]

    # The admin judges the hold by who would go: names and the tenant's identifier, not only ids.
    users = institution.users_by_id
    assert {(d.enrollment_id, d.identifier) for d in hold.drops} == {
        (e.id, users[e.user_id].sis_user_id) for e in dropped
    }
    assert all(d.name == users[d.user_id].name for d in hold.drops)

    approve_hold(services, tenant.tenant_id, course.id, "dean@example.edu")
    stored = stored_enrollments(services, tenant, course.id)
    assert not any(stored[e.id].active for e in dropped)
    assert pending_holds(services, tenant.tenant_id) == []
    (decided,) = [h for h in decided_holds(services, tenant.tenant_id) if h.course_id == course.id]
    assert (decided.status, decided.decided_by) == (HoldStatus.APPROVED, "dean@example.edu")
    assert decided.decided_at is not None and len(decided.drops) == len(dropped)


def test_rejected_drops_stay_out_until_canvas_proposes_different_ones(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    course = fresh_course(sim)
    sync(services, tenant, course, "r1")
    students = active_students(sim.state.institution, course.id)
    first_wave, second_wave = students[: len(students) // 2], students[len(students) // 2 :][:2]
    change(sim, lambda _: delete(first_wave))
    assert sync(services, tenant, course, "r2") is CourseOutcome.HELD
    reject_hold(services, tenant.tenant_id, course.id, "registrar@example.edu")
    assert sync(services, tenant, course, "r3") is CourseOutcome.SUCCEEDED  # the same drops: not asked again
    assert all(stored_enrollments(services, tenant, course.id)[e.id].active for e in first_wave)
    # Why they stay active is said in every run's errors, and the decision is kept.
    (why,) = [e for e in sync_errors(services, tenant.tenant_id, "r3") if e.code == "drops_rejected"]
    assert why.course_id == course.id and "registrar@example.edu rejected" in why.message
    assert why.message.startswith(f"{len(first_wave)} enrollments")
    (decided,) = [h for h in decided_holds(services, tenant.tenant_id) if h.course_id == course.id]
    assert (decided.status, decided.decided_by) == (HoldStatus.REJECTED, "registrar@example.edu")
    change(sim, lambda _: delete(second_wave))
    assert sync(services, tenant, course, "r4") is CourseOutcome.HELD  # a different set of drops


def test_a_small_drop_applies_at_once_and_is_kept_inactive_with_a_reason(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    course = fresh_course(sim)
    sync(services, tenant, course, "r1")
    (leaver, completer) = active_students(sim.state.institution, course.id)[:2]

    def drop_one(_: Institution) -> None:
        leaver.state = "deleted"
        completer.state = "completed"

    change(sim, drop_one)
    assert sync(services, tenant, course, "r2") is CourseOutcome.SUCCEEDED
    stored = stored_enrollments(services, tenant, course.id)
    assert (stored[leaver.id].active, stored[leaver.id].dropped_reason) == (False, "not_in_canvas")
    assert stored[leaver.id].dropped_at is not None
    assert (stored[completer.id].active, stored[completer.id].state) == (False, "completed")


def test_users_without_a_unique_identifier_are_per_user_errors_and_not_exported(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    course = fresh_course(sim)
    institution = sim.state.institution
    first, second, third = (
        institution.users_by_id[e.user_id] for e in active_students(institution, course.id)[:3]
    )

    def break_identifiers(_: Institution) -> None:
        second.sis_user_id = first.sis_user_id
        third.sis_user_id = None

    change(sim, break_identifiers)
    assert sync(services, tenant, course, "r1") is CourseOutcome.SUCCEEDED
    errors = {
        (e.user_id, e.code) for e in sync_errors(services, tenant.tenant_id, "r1") if e.course_id == course.id
    }
    assert {
        (first.id, "duplicate_identifier"),
        (second.id, "duplicate_identifier"),
        (third.id, "missing_identifier"),
    } <= errors
    exported = next(
        c for c in export_roster(services, tenant.tenant_id)["courses"] if c["canvas_id"] == course.id
    )
    exported_users = {user["canvas_id"] for user in exported["users"]}
    assert not {first.id, second.id, third.id} & exported_users
    assert not {e["user_id"] for e in exported["enrollments"]} & {first.id, second.id, third.id}
    rows = list(csv.DictReader(io.StringIO(sync_errors_csv(sync_errors(services, tenant.tenant_id, "r1")))))
    assert {row["code"] for row in rows} >= {"duplicate_identifier", "missing_identifier"}


def test_roles_map_custom_roles_and_never_the_test_student(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    configure_tenant(
        services,
        tenant.tenant_id,
        {
            "role_overrides": {
                "Lab Student": "excluded",
                "StudentViewEnrollment": "student",
                "TaEnrollment": "course_admin",
            }
        },
    )
    institution = sim.state.institution
    lab_role = next(role for role in institution.roles if role.name == "Lab Student")
    course_id = next(
        e.course_id for e in institution.enrollments if e.role_id == lab_role.id and e.state == "active"
    )
    source = next(c for c in institution.courses if c.id == course_id)
    course = CanvasCourse(id=course_id, name=source.name, workflow_state="available")
    configured = services.table.get_tenant(tenant.tenant_id)
    assert configured is not None
    sync_course(services, message(configured, course), attempt=1)
    stored = stored_enrollments(services, configured, course_id)
    by_type = {e.type: e for e in stored.values()}
    assert all(e.role != "Lab Student" for e in stored.values())
    assert "StudentViewEnrollment" not in by_type and "ObserverEnrollment" not in by_type
    if "TaEnrollment" in by_type:
        assert by_type["TaEnrollment"].roster_role is RosterRole.COURSE_ADMIN
    assert by_type["TeacherEnrollment"].roster_role is RosterRole.INSTRUCTOR


def test_course_selection_filters_and_dates(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    institution = sim.state.institution
    client = canvas_client_for(services, tenant)
    now = datetime.now(UTC)
    published = {c.id for c in institution.courses if c.db_state == "available"}
    assert {c.id for c in list_synced_courses(client, tenant, now).courses} == published

    with_unpublished = configure_tenant(services, tenant.tenant_id, {"courses": {"published_only": False}})
    unpublished = {c.id for c in institution.courses if c.db_state in {"created", "claimed"}}
    assert (
        unpublished
        and {c.id for c in list_synced_courses(client, with_unpublished, now).courses}
        == published | unpublished
    )

    term_id = next(c.term_id for c in institution.courses if c.db_state == "available" and c.term_id != 1)
    by_term = configure_tenant(
        services, tenant.tenant_id, {"courses": {"published_only": False, "term_ids": [term_id]}}
    )
    assert {c.id for c in list_synced_courses(client, by_term, now).courses} == {
        c.id
        for c in institution.courses
        if c.term_id == term_id and c.db_state in {"available", "created", "claimed"}
    }

    listed = update_sync_list(services, tenant.tenant_id, SyncListMode.ADD, [str(min(published)), "999999"])
    listing = list_synced_courses(client, listed, now)
    assert [c.id for c in listing.courses] == [min(published)] and listing.missing == ["999999"]


def test_a_course_concluded_by_its_term_date_is_not_synced(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    institution = sim.state.institution
    past_term = next(t for t in institution.terms if t.end_at and t.end_at < "2026")
    course = next(c for c in institution.courses if c.db_state == "available" and c.id not in _used_courses)
    _used_courses.add(course.id)
    change(sim, lambda _: setattr(course, "term_id", past_term.id))
    synced = {
        c.id
        for c in list_synced_courses(canvas_client_for(services, tenant), tenant, datetime.now(UTC)).courses
    }
    assert course.id not in synced


def test_replacing_the_sync_list_needs_confirmation(services: Services, tenant: Tenant) -> None:
    update_sync_list(services, tenant.tenant_id, SyncListMode.ADD, ["101", "sis_course_id:ABC"])
    with pytest.raises(ConfirmationNeededError, match="replace would swap the 2 listed courses for 1"):
        update_sync_list(services, tenant.tenant_id, SyncListMode.REPLACE, ["102"])
    replaced = update_sync_list(services, tenant.tenant_id, SyncListMode.REPLACE, ["102"], confirmed=True)
    assert replaced.settings.courses.sync_list == ("102",)
    # Removing the last course means every course of the account: that widens, so it is asked too.
    with pytest.raises(ConfirmationNeededError, match="empties the sync list"):
        update_sync_list(services, tenant.tenant_id, SyncListMode.REMOVE, ["102"])
    removed = update_sync_list(services, tenant.tenant_id, SyncListMode.REMOVE, ["102"], confirmed=True)
    assert removed.settings.courses.sync_list == ()
    # An empty list replaced asks nothing: it narrows from every course to the given ones.
    assert update_sync_list(
        services, tenant.tenant_id, SyncListMode.REPLACE, ["103"]
    ).settings.courses.sync_list == ("103",)


def test_each_tenant_syncs_on_its_own_schedule(services: Services, tenant: Tenant) -> None:
    configure_tenant(services, tenant.tenant_id, {"schedule": {"every_minutes": 60}})
    now = datetime.now(UTC)
    assert tenant.tenant_id in {r.tenant_id for r in request_scheduled_syncs(services, now)}
    stored = services.table.get_tenant(tenant.tenant_id)
    assert stored is not None and stored.next_sync_at == now + timedelta(minutes=60)
    assert tenant.tenant_id not in {
        r.tenant_id for r in request_scheduled_syncs(services, now + timedelta(minutes=15))
    }
    later = now + timedelta(minutes=61)
    assert tenant.tenant_id in {r.tenant_id for r in request_scheduled_syncs(services, later)}


# -- what a full sync covers, and what leaves it (issue 14) ---------------------------------------------
class CapturedQueues:
    """The planner's course messages, kept for the test to run in order instead of sent to SQS."""

    def __init__(self) -> None:
        self.messages: list[CourseSyncMessage] = []

    def send_course_messages(self, messages: Sequence[CourseSyncMessage]) -> None:
        self.messages.extend(messages)


def full_sync(services: Services, tenant_id: str) -> tuple[RunSummary, list[CourseSyncMessage]]:
    """A whole run in this process: plan it, then sync every course message it queued."""
    queues = CapturedQueues()
    planner = dataclasses.replace(services, queues=cast(SyncQueues, queues))
    run = plan_run(planner, SyncRequest(tenant_id=tenant_id, run_id=new_run_id(), trigger=SyncTrigger.MANUAL))
    for course_message in queues.messages:
        sync_course(services, course_message, attempt=1)
    summary = run_summary(services, tenant_id, run.run_id)
    assert summary is not None and summary.finished
    return summary, queues.messages


def exported(services: Services, tenant_id: str) -> tuple[dict[int, Any], dict[int, Any]]:
    export = export_roster(services, tenant_id)
    in_scope = {course["canvas_id"]: course for course in export["courses"]}
    left = export.get("out_of_scope_courses", [])  # absent from an export that lists every course
    return in_scope, {course["canvas_id"]: course for course in left}


def test_courses_that_leave_the_selection_leave_the_export_until_they_come_back(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    institution = sim.state.institution
    tenant_id = tenant.tenant_id
    configure_tenant(services, tenant_id, {"mass_drop_threshold": 1})  # the role change must not be held
    full_sync(services, tenant_id)
    everything, _ = exported(services, tenant_id)
    lab_role = next(role.id for role in institution.roles if role.name == "Lab Student")
    lab_courses = {
        e.course_id for e in institution.enrollments if e.role_id == lab_role and e.state == "active"
    }

    def of_account(account_id: int) -> set[int]:
        accounts = institution.account_and_descendants(account_id)
        return {c.id for c in institution.courses if c.account_id in accounts} & set(everything)

    # A sub-account with lab students on both sides of the new selection.
    account = next(
        a for a in (2, 3) if of_account(a) & lab_courses and (set(everything) - of_account(a)) & lab_courses
    )
    configure_tenant(
        services,
        tenant_id,
        {"courses": {"account_id": account}, "role_overrides": {"Lab Student": "excluded"}},
    )
    narrowed, _ = full_sync(services, tenant_id)
    kept, left = exported(services, tenant_id)
    assert set(kept) == of_account(account) and set(left) == set(everything) - set(kept)
    assert narrowed.run.courses_left_scope == {"not_selected": len(left)}
    assert all(c["out_of_scope_reason"] == "not_selected" and c["out_of_scope_at"] for c in left.values())
    errors = sync_errors(services, tenant_id, narrowed.run.run_id)
    assert {e.course_id for e in errors if e.code == "course_out_of_scope"} == set(left)
    # The new role mapping applies to the courses still selected: their lab students drop, with why.
    lab = [e for c in kept.values() for e in c["enrollments"] if e["role"] == "Lab Student"]
    assert lab
    assert {(e["state"], e["active"], e["dropped_reason"]) for e in lab} == {
        ("dropped", False, "role_excluded")
    }
    # A message a live event sends (no planner behind it) leaves an out-of-scope course as it is.
    outside = min(left)
    source = institution.courses_by_id[outside]
    live = CourseSyncMessage(
        tenant_id=tenant_id,
        run_id="live-1",
        course=CanvasCourse(id=outside, name=source.name, workflow_state="available"),
    )
    sync_course(services, live, attempt=1)
    assert outside not in exported(services, tenant_id)[0]

    # Widened again: every course comes back, synced under the mapping of now.
    configure_tenant(services, tenant_id, {"courses": {"account_id": None}})
    widened, _ = full_sync(services, tenant_id)
    back, gone = exported(services, tenant_id)
    assert set(back) == set(everything) and gone == {} and widened.run.courses_left_scope == {}
    returned_lab = [
        e for course_id in left for e in back[course_id]["enrollments"] if e["role"] == "Lab Student"
    ]
    assert returned_lab and {e["dropped_reason"] for e in returned_lab} == {"role_excluded"}


def test_a_course_deleted_in_canvas_or_taken_off_the_sync_list_leaves_the_export(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    tenant_id = tenant.tenant_id
    kept, deleted, removed = (fresh_course(sim).id for _ in range(3))
    update_sync_list(services, tenant_id, SyncListMode.ADD, [str(kept), str(deleted), str(removed)])
    _, first = full_sync(services, tenant_id)
    assert {m.course.id for m in first} == {kept, deleted, removed}
    stale = next(m for m in first if m.course.id == removed)  # redelivered after the next planning

    change(sim, lambda data: setattr(data.courses_by_id[deleted], "db_state", "deleted"))
    update_sync_list(services, tenant_id, SyncListMode.REMOVE, [str(removed)])
    summary, _ = full_sync(services, tenant_id)
    in_scope, left = exported(services, tenant_id)
    assert set(in_scope) == {kept}
    assert summary.run.courses_left_scope == {"not_in_canvas": 1, "not_selected": 1}
    assert {c: left[c]["out_of_scope_reason"] for c in left} == {
        deleted: "not_in_canvas",
        removed: "not_selected",
    }
    sync_course(services, stale, attempt=1)  # planned before the course left: it stays out
    assert removed not in exported(services, tenant_id)[0]


def test_a_dropped_enrollment_is_exported_as_dropped_with_its_reason_and_time(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    course = fresh_course(sim)
    sync(services, tenant, course, "r1")
    (leaver,) = active_students(sim.state.institution, course.id)[:1]
    change(sim, lambda _: delete([leaver]))
    sync(services, tenant, course, "r2")
    exported_course = next(
        c for c in export_roster(services, tenant.tenant_id)["courses"] if c["canvas_id"] == course.id
    )
    by_id = {e["canvas_id"]: e for e in exported_course["enrollments"]}
    dropped = by_id[leaver.id]
    assert (dropped["state"], dropped["active"], dropped["dropped_reason"]) == (
        "dropped",
        False,
        "not_in_canvas",
    )
    assert datetime.fromisoformat(dropped["dropped_at"]) > datetime.now(UTC) - timedelta(minutes=5)
    listed = [e for e in by_id.values() if e["canvas_id"] != leaver.id]
    assert listed and all(e["dropped_at"] is None and e["dropped_reason"] is None for e in listed)
    assert all(e["active"] == (e["state"] == "active") for e in by_id.values())


def test_a_misspelled_role_or_an_unknown_account_is_refused_and_nothing_is_saved(
    services: Services, tenant: Tenant
) -> None:
    with pytest.raises(CanvasSettingsError, match=r"'Lab Studnet' is not a course role.*'Lab Student'"):
        configure_tenant(services, tenant.tenant_id, {"role_overrides": {"Lab Studnet": "excluded"}})
    with pytest.raises(CanvasSettingsError, match="label of the Canvas role 'TaEnrollment'"):
        configure_tenant(services, tenant.tenant_id, {"role_overrides": {"TA": "student"}})
    with pytest.raises(CanvasSettingsError, match="account 99 is not in this Canvas"):
        configure_tenant(services, tenant.tenant_id, {"courses": {"account_id": 99}})
    stored = services.table.get_tenant(tenant.tenant_id)
    assert stored is not None and stored.settings == tenant.settings
    accepted = configure_tenant(
        services,
        tenant.tenant_id,
        {
            "courses": {"account_id": 2},
            "role_overrides": {"Lab Student": "excluded", "TaEnrollment": "student"},
        },
    )
    assert accepted.settings.courses.account_id == 2


def test_the_self_test_samples_a_selected_course_as_the_sync_reads_it(
    services: Services, sim: RunningSimulator, tenant: Tenant
) -> None:
    institution = sim.state.institution
    course = fresh_course(sim)
    configure_tenant(services, tenant.tenant_id, {"user_id_field": "email"})
    update_sync_list(services, tenant.tenant_id, SyncListMode.ADD, [str(course.id)])
    enrollments = institution.enrollments_by_course[course.id]
    teacher = next(e for e in enrollments if e.type == "TeacherEnrollment")
    student = active_students(institution, course.id)[0]

    def hide_emails(_: Institution) -> None:
        # Neither is an active student: a sample of active students alone sees every email.
        institution.users_by_id[teacher.user_id].email = None
        institution.users_by_id[student.user_id].email = None
        student.state = "inactive"

    change(sim, hide_emails)
    report = run_self_test(services, tenant.tenant_id)
    sample = next(check for check in report.checks if check.name == "Sample course roster")
    sync(services, tenant, course, "r-self-test")  # the worker reads the tenant's settings itself
    recorded = [e for e in sync_errors(services, tenant.tenant_id, "r-self-test") if e.user_id is not None]
    hidden = [e for e in recorded if e.code == "email_hidden"]
    assert {teacher.user_id, student.user_id} <= {e.user_id for e in hidden}
    assert f"course {course.id}" in sample.detail and sample.status is CheckStatus.WARN
    assert f"{len(hidden)} email_hidden" in sample.detail
    assert sample.findings == Counter(e.code for e in recorded)  # the same errors, code by code
    assert "other courses were not read" in sample.detail
