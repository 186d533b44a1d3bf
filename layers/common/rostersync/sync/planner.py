"""Starting runs: the schedule asks for every connected tenant; the planner lists a tenant's courses."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import CanvasError, CanvasNotFoundError
from rostersync.canvas.models import CanvasCourse
from rostersync.canvas.scopes import GET_ACCOUNT_COURSE, LIST_ACCOUNT_COURSES
from rostersync.connection import canvas_client_for, canvas_slot
from rostersync.models import (
    CourseSyncMessage,
    RunStatus,
    SyncError,
    SyncErrorCode,
    SyncRequest,
    SyncRun,
    SyncTrigger,
    Tenant,
    TenantStatus,
)
from rostersync.services import Services

logger = Logger(child=True)

# Published, not concluded: what an exam roster is about (Canvas's "available"; filters take DB names).
SYNCED_COURSE_STATES = ("available",)
UNPUBLISHED_STATES = ("created", "claimed")


def new_run_id() -> str:
    # Sorts by start time, so the newest runs come first in a reverse query.
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


class SyncCooldownError(Exception):
    def __init__(self, scope: str, retry_at: datetime) -> None:
        super().__init__(
            f"a sync of {scope} was asked for recently; the next is allowed at {retry_at.isoformat()}"
        )
        self.retry_at = retry_at


def request_sync(
    services: Services,
    tenant_id: str,
    trigger: SyncTrigger,
    course_ids: tuple[int, ...] = (),
    *,
    enforce_cooldown: bool = False,
) -> SyncRequest:
    """Queue a sync of the tenant (or of some courses). "Sync now" waits out a cooldown per scope."""
    if enforce_cooldown:
        cooldown = services.settings.manual_sync_cooldown_seconds
        for scope in [f"course {course_id}" for course_id in course_ids] or ["the tenant"]:
            retry_at = services.table.claim_cooldown(tenant_id, scope, cooldown)
            if retry_at is not None:
                raise SyncCooldownError(scope, retry_at)
    request = SyncRequest(tenant_id=tenant_id, run_id=new_run_id(), trigger=trigger, course_ids=course_ids)
    services.queues.send_sync_request(request)
    return request


def request_scheduled_syncs(services: Services, now: datetime) -> list[SyncRequest]:
    """On each tick of the stack's schedule: a full sync of every connected tenant whose own time came."""
    requests = []
    for tenant in services.table.list_tenants():
        if tenant.status is not TenantStatus.ACTIVE:
            continue
        if tenant.next_sync_at is not None and tenant.next_sync_at > now:
            continue
        requests.append(request_sync(services, tenant.tenant_id, SyncTrigger.SCHEDULE))
        services.table.set_next_sync(tenant.tenant_id, tenant.settings.schedule.next_run(now))
    return requests


@dataclass(frozen=True)
class CourseListing:
    courses: list[CanvasCourse]
    missing: list[str]  # sync-list entries Canvas does not know


def list_synced_courses(
    client: CanvasClient, tenant: Tenant, now: datetime, only: tuple[int, ...] = ()
) -> CourseListing:
    """The courses a sync covers: `only` these, else the sync list, else the account, term, state filters."""
    selection = tenant.settings.courses
    root = tenant.root_account_id or "self"
    listed: list[CanvasCourse] = []
    missing: list[str] = []
    references = [str(course_id) for course_id in only] or list(selection.sync_list)
    if references:
        for ref in references:
            try:
                item = client.get_one(GET_ACCOUNT_COURSE, [("include[]", "term")], account_id=root, id=ref)
            except CanvasNotFoundError:
                missing.append(ref)
                continue
            listed.append(CanvasCourse.model_validate(item))
    else:
        states = (
            SYNCED_COURSE_STATES if selection.published_only else (*SYNCED_COURSE_STATES, *UNPUBLISHED_STATES)
        )
        params = [*(("state[]", state) for state in states), ("include[]", "term")]
        account = selection.account_id or root
        for term_filter in [[("enrollment_term_id", str(term))] for term in selection.term_ids] or [[]]:
            items = client.get_all(LIST_ACCOUNT_COURSES, [*params, *term_filter], account_id=account)
            listed.extend(CanvasCourse.model_validate(item) for item in items)
    unique = {course.id: course for course in listed if course.workflow_state != "deleted"}
    return CourseListing([course for course in unique.values() if not course.concluded(now)], missing)


def is_selected(tenant: Tenant, course: CanvasCourse, now: datetime) -> bool:
    """Whether a full sync would cover this course (the account filter aside: a live event's course is
    checked by state, term, sync list and dates)."""
    selection = tenant.settings.courses
    if selection.sync_list:
        references = {str(course.id), f"sis_course_id:{course.sis_course_id}"}
        return bool(references & set(selection.sync_list)) and not course.concluded(now)
    states = {"available"} if selection.published_only else {"available", "unpublished"}
    if course.workflow_state not in states or course.concluded(now):
        return False
    return not selection.term_ids or course.enrollment_term_id in selection.term_ids


def plan_run(services: Services, request: SyncRequest) -> SyncRun:
    """Create the run and queue one message per course. Raises only what a retry may fix."""
    existing = services.table.get_run(request.tenant_id, request.run_id)
    if existing is not None and existing.status is not RunStatus.FAILED:
        logger.info("run already planned; redelivery ignored", extra={"run_id": request.run_id})
        return existing
    run = SyncRun(tenant_id=request.tenant_id, run_id=request.run_id, trigger=request.trigger)
    tenant = services.table.get_tenant(request.tenant_id)
    if tenant is None or tenant.status is not TenantStatus.ACTIVE:
        code = "unknown_tenant" if tenant is None else tenant.status.value
        failed = run.model_copy(
            update={
                "status": RunStatus.FAILED,
                "finished_at": datetime.now(UTC),
                "error_code": code,
                "error_message": _not_syncable(tenant),
            }
        )
        services.table.put_run(failed)
        return failed
    client = canvas_client_for(services, tenant)
    try:
        with canvas_slot(services, tenant.tenant_id):
            listing = list_synced_courses(client, tenant, datetime.now(UTC), request.course_ids)
    except CanvasError as error:
        failed = run.model_copy(
            update={
                "status": RunStatus.FAILED,
                "finished_at": datetime.now(UTC),
                "error_code": error.code,
                "error_message": str(error),
                "canvas_requests": client.stats.requests,
            }
        )
        services.table.put_run(failed)
        if error.retryable:
            raise
        return failed
    courses = listing.courses
    services.table.put_sync_errors(
        SyncError(
            tenant_id=tenant.tenant_id,
            run_id=run.run_id,
            code=SyncErrorCode.COURSE_NOT_FOUND.value,
            message=f"course {ref} of the sync list is not in Canvas (or not in this account)",
        )
        for ref in listing.missing
    )
    planned = run.model_copy(
        update={
            "status": RunStatus.RUNNING if courses else RunStatus.COMPLETED,
            "finished_at": None if courses else datetime.now(UTC),
            "courses_total": len(courses),
            "canvas_requests": client.stats.requests,
        }
    )
    services.table.put_run(planned)
    # Before any message: a worker that finds no pending course closes the run.
    services.table.put_pending_courses(tenant.tenant_id, run.run_id, (course.id for course in courses))
    services.queues.send_course_messages(
        [
            CourseSyncMessage(tenant_id=tenant.tenant_id, run_id=run.run_id, course=course)
            for course in courses
        ]
    )
    logger.info(
        "run planned", extra={"tenant_id": tenant.tenant_id, "run_id": run.run_id, "courses": len(courses)}
    )
    return planned


def _not_syncable(tenant: Tenant | None) -> str:
    if tenant is None:
        return "no such tenant"
    if tenant.status is TenantStatus.PENDING_AUTHORIZATION:
        return "the tenant has not authorized rostersync in Canvas yet"
    return f"the tenant must authorize again: {tenant.status_reason or 'Canvas refused its tokens'}"
