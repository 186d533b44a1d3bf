"""Reading back what syncs did: run summaries and the roster export (a contract for scripts:
docs/architecture.md)."""

from __future__ import annotations

from typing import Any, TypeVar

from rostersync.csv_output import csv_text
from rostersync.models import (
    ChangeCounts,
    CourseOutcome,
    RosterCourse,
    RosterEnrollment,
    RosterSection,
    RosterUser,
    RunSummary,
    SyncError,
)
from rostersync.services import Services
from rostersync.store.keys import ENROLLMENT_PREFIX, SECTION_PREFIX, USER_PREFIX
from rostersync.store.rosters import StoredItem
from rostersync.tenants import require_tenant

EXPORTED_USER_FIELDS = {"canvas_id", "name", "sortable_name", "sis_user_id", "login_id", "email"}
EXPORTED_ENROLLMENT_FIELDS = {
    "canvas_id",
    "user_id",
    "section_id",
    "type",
    "role",
    "role_id",
    "state",
    "active",
    "dropped_at",
    "dropped_reason",
}
# An exported enrollment's `state`: Canvas's enrollment state while Canvas lists it and the role mapping
# keeps it (active, invited, inactive, completed), else "dropped", with `dropped_at` and `dropped_reason`.
DROPPED_STATE = "dropped"


def run_summary(services: Services, tenant_id: str, run_id: str) -> RunSummary | None:
    run = services.table.get_run(tenant_id, run_id)
    if run is None:
        return None
    results = services.table.list_course_results(tenant_id, run_id)
    totals = ChangeCounts()
    for result in results:
        for name in ChangeCounts.model_fields:
            setattr(totals, name, getattr(totals, name) + getattr(result.changes, name))
    succeeded = sum(result.outcome is CourseOutcome.SUCCEEDED for result in results)
    held = sum(result.outcome is CourseOutcome.HELD for result in results)
    failed = sum(result.outcome is CourseOutcome.FAILED for result in results)
    return RunSummary(
        run=run,
        courses_succeeded=succeeded,
        courses_held=held,
        courses_failed=failed,
        courses_pending=max(run.courses_total - succeeded - held - failed, 0),
        changes=totals,
        canvas_requests=run.planning_canvas_requests + sum(result.canvas_requests for result in results),
        canvas_throttled=sum(result.canvas_throttled for result in results),
        canvas_retries=sum(result.canvas_retries for result in results),
    )


def export_roster(services: Services, tenant_id: str) -> dict[str, Any]:
    """Every in-scope course with its roster; courses that left the tenant's selection are listed apart,
    with when and why, without their rosters."""
    require_tenant(services, tenant_id)
    courses = []
    out_of_scope = []
    rows = sorted(services.table.list_course_rows(tenant_id), key=lambda row: row.course_id)
    for row in rows:
        if row.course is None:  # claimed by a writer that never committed: no roster yet
            continue
        course = RosterCourse.model_validate_json(row.course.data)
        if row.out_of_scope is not None:
            out_of_scope.append(
                {
                    **course.model_dump(mode="json"),
                    "out_of_scope_at": row.out_of_scope.at.isoformat(),
                    "out_of_scope_reason": row.out_of_scope.reason,
                }
            )
            continue
        courses.append(exported_course(course, services.table.course_items(tenant_id, course.canvas_id)))
    return {"tenant": tenant_id, "courses": courses, "out_of_scope_courses": out_of_scope}


def exported_course(course: RosterCourse, items: dict[str, StoredItem]) -> dict[str, Any]:
    """A course and its roster as exported: users that cannot be identified, and their enrollments,
    are left out."""
    users = [user for user in _records(items, USER_PREFIX, RosterUser) if user.sync_error is None]
    identified = {user.canvas_id for user in users}
    enrollments = [e for e in _records(items, ENROLLMENT_PREFIX, RosterEnrollment) if e.user_id in identified]
    return {
        **course.model_dump(mode="json"),
        "sections": [
            section.model_dump(mode="json") for section in _records(items, SECTION_PREFIX, RosterSection)
        ],
        "users": [user.model_dump(mode="json", include=EXPORTED_USER_FIELDS) for user in users],
        "enrollments": [exported_enrollment(e) for e in enrollments],
    }


def exported_enrollment(enrollment: RosterEnrollment) -> dict[str, Any]:
    exported = enrollment.model_dump(mode="json", include=EXPORTED_ENROLLMENT_FIELDS)
    if enrollment.dropped_reason is not None:
        exported["state"] = DROPPED_STATE
    return exported


def roster_totals(export: dict[str, Any]) -> dict[str, int]:
    """What an export holds: courses, sections, distinct users and enrollments."""
    courses = export["courses"]
    return {
        "courses": len(courses),
        "sections": sum(len(course["sections"]) for course in courses),
        "users": len({user["canvas_id"] for course in courses for user in course["users"]}),
        "enrollments": sum(len(course["enrollments"]) for course in courses),
    }


Record = TypeVar("Record", RosterSection, RosterUser, RosterEnrollment)


def _records(items: dict[str, StoredItem], prefix: str, model: type[Record]) -> list[Record]:
    records = [model.model_validate_json(item.data) for sk, item in items.items() if sk.startswith(prefix)]
    return sorted(records, key=lambda record: record.canvas_id)


def sync_errors(services: Services, tenant_id: str, run_id: str | None = None) -> list[SyncError]:
    """A run's sync errors (the latest run's by default): the run's own failure, courses that failed for
    good (scope_missing, needs_reauthorization, canvas_unavailable...) and per-user problems."""
    require_tenant(services, tenant_id)
    if run_id is None:
        latest = services.table.list_runs(tenant_id, limit=1)
        if not latest:
            return []
        run_id = latest[0].run_id
    run = services.table.get_run(tenant_id, run_id)  # none for syncs outside a planned run
    failures = [
        SyncError(
            tenant_id=tenant_id,
            run_id=run_id,
            course_id=result.course_id,
            code=result.error_code or "canvas_error",
            message=result.error_message or "",
            recorded_at=result.finished_at,
        )
        for result in services.table.list_course_results(tenant_id, run_id)
        if result.outcome is CourseOutcome.FAILED
    ]
    if run is not None and run.error_code:
        failures.append(
            SyncError(
                tenant_id=tenant_id,
                run_id=run.run_id,
                code=run.error_code,
                message=run.error_message or "",
                recorded_at=run.finished_at or run.started_at,
            )
        )
    recorded = services.table.list_sync_errors(tenant_id, run_id)
    return sorted([*failures, *recorded], key=lambda e: (e.course_id or 0, e.user_id or 0, e.code))


def sync_errors_csv(errors: list[SyncError]) -> str:
    return csv_text(
        ["run_id", "course_id", "user_id", "code", "message", "recorded_at"],
        (
            [
                error.run_id,
                error.course_id,
                error.user_id,
                error.code,
                error.message,
                error.recorded_at.isoformat(),
            ]
            for error in errors
        ),
    )
