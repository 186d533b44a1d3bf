"""Syncing one course: read it whole from Canvas, then write only what changed."""

from __future__ import annotations

from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import CanvasError
from rostersync.canvas.models import CanvasEnrollment, CanvasSection, CanvasUser
from rostersync.canvas.scopes import LIST_COURSE_ENROLLMENTS, LIST_COURSE_SECTIONS, LIST_COURSE_USERS
from rostersync.connection import canvas_client_for, canvas_slot
from rostersync.models import CourseOutcome, CourseResult, CourseSyncMessage, RunStatus, Tenant, TenantStatus
from rostersync.services import Services
from rostersync.sync.roster import (
    SYNCED_ENROLLMENT_STATES,
    CourseRoster,
    build_course_roster,
    course_item,
    diff_roster,
    roster_items,
)

logger = Logger(child=True)


class RetryLater(Exception):
    """The course failed for a reason a later attempt may not have; the message goes back to the queue."""


def fetch_course_roster(client: CanvasClient, tenant: Tenant, message: CourseSyncMessage) -> CourseRoster:
    """Every page of every list, or an exception: a partial fetch is never returned."""
    course_id = message.course.id
    sections = [
        CanvasSection.model_validate(item)
        for item in client.get_all(LIST_COURSE_SECTIONS, course_id=course_id)
    ]
    enrollments = [
        CanvasEnrollment.model_validate(item)
        for item in client.get_all(
            LIST_COURSE_ENROLLMENTS,
            [("state[]", state) for state in SYNCED_ENROLLMENT_STATES],
            course_id=course_id,
        )
    ]
    users: list[CanvasUser] = []
    if tenant.needs_emails:
        params = [
            ("include[]", "email"),
            *(("enrollment_state[]", state) for state in SYNCED_ENROLLMENT_STATES),
        ]
        users = [
            CanvasUser.model_validate(item)
            for item in client.get_all(LIST_COURSE_USERS, params, course_id=course_id)
        ]
    return build_course_roster(message.course, sections, enrollments, users)


def sync_course(services: Services, message: CourseSyncMessage, attempt: int) -> CourseResult:
    """Sync one course of a run and record its result. Raises RetryLater when another attempt may help."""
    result = CourseResult(
        tenant_id=message.tenant_id,
        run_id=message.run_id,
        course_id=message.course.id,
        outcome=CourseOutcome.FAILED,
        attempt=attempt,
    )
    tenant = services.table.get_tenant(message.tenant_id)
    if tenant is None or tenant.status is not TenantStatus.ACTIVE:
        code = "unknown_tenant" if tenant is None else tenant.status.value
        return _record(
            services, result.model_copy(update={"error_code": code, "error_message": "tenant not syncable"})
        )
    client = canvas_client_for(services, tenant)
    try:
        with canvas_slot(services, tenant.tenant_id):
            roster = fetch_course_roster(client, tenant, message)
    except CanvasError as error:
        # Revoked grants, missing scopes and refusals are final; outages get the queue's retries.
        final = not error.retryable or attempt >= services.settings.course_sync_max_receive_count
        failed = result.model_copy(
            update={
                "outcome": CourseOutcome.FAILED if final else CourseOutcome.RETRYING,
                "error_code": error.code,
                "error_message": str(error),
                **_client_counts(client),
            }
        )
        _record(services, failed)
        logger.warning(
            "course sync failed", extra={"course_id": message.course.id, "code": error.code, "final": final}
        )
        if not final:
            raise RetryLater(str(error)) from error
        return failed
    stored = services.table.course_items(tenant.tenant_id, message.course.id)
    changes = diff_roster(stored, roster_items(roster), datetime.now(UTC))
    new_course = course_item(roster.course)
    previous_course = services.table.stored_course(tenant.tenant_id, message.course.id)
    course_changed = previous_course is None or previous_course.content_hash != new_course.content_hash
    services.table.write_course(
        tenant.tenant_id,
        message.course.id,
        new_course if course_changed else None,
        changes.puts,
        changes.deletes,
    )
    succeeded = result.model_copy(
        update={
            "outcome": CourseOutcome.SUCCEEDED,
            "changes": changes.counts,
            **_client_counts(client),
        }
    )
    return _record(services, succeeded)


def _client_counts(client: CanvasClient) -> dict[str, int]:
    return {
        "canvas_requests": client.stats.requests,
        "canvas_throttled": client.stats.throttled,
        "canvas_retries": client.stats.retries,
    }


def _record(services: Services, result: CourseResult) -> CourseResult:
    services.table.put_course_result(result)
    if result.is_final:
        _complete_run_when_done(services, result.tenant_id, result.run_id)
    return result


def _complete_run_when_done(services: Services, tenant_id: str, run_id: str) -> None:
    run = services.table.get_run(tenant_id, run_id)
    if run is None or run.status is not RunStatus.RUNNING:
        return
    results = services.table.list_course_results(tenant_id, run_id)
    if len(results) >= run.courses_total and all(result.is_final for result in results):
        services.table.set_run_status(tenant_id, run_id, RunStatus.COMPLETED)
