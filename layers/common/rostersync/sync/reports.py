"""Reading back what syncs did: run summaries and the roster export contract (shared/DESIGN.md)."""

from __future__ import annotations

from typing import Any

from rostersync.models import (
    ChangeCounts,
    CourseOutcome,
    RosterCourse,
    RosterEnrollment,
    RosterSection,
    RosterUser,
    RunSummary,
)
from rostersync.services import Services
from rostersync.store.table import StoredItem
from rostersync.sync.roster import ENROLLMENT_PREFIX, SECTION_PREFIX, USER_PREFIX
from rostersync.tenants import require_tenant

EXPORTED_ENROLLMENT_FIELDS = {
    "canvas_id",
    "user_id",
    "section_id",
    "type",
    "role",
    "role_id",
    "state",
    "active",
}


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
    failed = sum(result.outcome is CourseOutcome.FAILED for result in results)
    return RunSummary(
        run=run,
        courses_succeeded=succeeded,
        courses_failed=failed,
        courses_pending=max(run.courses_total - succeeded - failed, 0),
        changes=totals,
        canvas_requests=run.canvas_requests + sum(result.canvas_requests for result in results),
        canvas_throttled=sum(result.canvas_throttled for result in results),
        canvas_retries=sum(result.canvas_retries for result in results),
    )


def export_roster(services: Services, tenant_id: str) -> dict[str, Any]:
    require_tenant(services, tenant_id)
    courses = []
    stored_courses = sorted(
        (RosterCourse.model_validate_json(item.data) for item in services.table.list_courses(tenant_id)),
        key=lambda course: course.canvas_id,
    )
    for course in stored_courses:
        items = services.table.course_items(tenant_id, course.canvas_id)
        courses.append(
            {
                **course.model_dump(mode="json"),
                "sections": _exported(items, SECTION_PREFIX, RosterSection),
                "users": _exported(items, USER_PREFIX, RosterUser),
                "enrollments": _exported(
                    items, ENROLLMENT_PREFIX, RosterEnrollment, EXPORTED_ENROLLMENT_FIELDS
                ),
            }
        )
    return {"tenant": tenant_id, "courses": courses}


def _exported(
    items: dict[str, StoredItem],
    prefix: str,
    model: type[RosterSection | RosterUser | RosterEnrollment],
    fields: set[str] | None = None,
) -> list[dict[str, Any]]:
    records = [model.model_validate_json(item.data) for sk, item in items.items() if sk.startswith(prefix)]
    return [
        record.model_dump(mode="json", include=fields)
        for record in sorted(records, key=lambda r: r.canvas_id)
    ]
