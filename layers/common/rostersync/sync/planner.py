"""Starting runs: the planner lists a tenant's courses and fans them out (the requests it takes up are
sync/requesting.py's)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import CanvasError, CanvasNotFoundError
from rostersync.canvas.models import CanvasCourse
from rostersync.canvas.scopes import GET_ACCOUNT_COURSE, LIST_ACCOUNT_COURSES
from rostersync.connection import canvas_client_for, canvas_slot
from rostersync.models import (
    CourseSelection,
    CourseSyncMessage,
    OutOfScopeReason,
    RosterCourse,
    RunStatus,
    SyncError,
    SyncErrorCode,
    SyncRequest,
    SyncRun,
    Tenant,
    TenantStatus,
)
from rostersync.services import Services

logger = Logger(child=True)

# Published, not concluded: what an exam roster is about (Canvas's "available"; filters take DB names).
SYNCED_COURSE_STATES = ("available",)
UNPUBLISHED_STATES = ("created", "claimed")


@dataclass(frozen=True)
class CourseListing:
    courses: list[CanvasCourse]
    missing: list[str]  # sync-list (or asked-for) entries Canvas does not know
    # Courses Canvas returned that the sync leaves out (deleted, concluded, or asked for but not selected).
    left_out: dict[int, OutOfScopeReason] = field(default_factory=dict)


def course_listing_params(selection: CourseSelection) -> list[list[tuple[str, str]]]:
    """The account course listing's query, one per term filter: the states and terms a full sync covers."""
    states = (
        SYNCED_COURSE_STATES if selection.published_only else (*SYNCED_COURSE_STATES, *UNPUBLISHED_STATES)
    )
    params = [*(("state[]", state) for state in states), ("include[]", "term")]
    return [[*params, ("enrollment_term_id", str(term))] for term in selection.term_ids] or [params]


def list_synced_courses(
    client: CanvasClient, tenant: Tenant, now: datetime, only: tuple[int, ...] = ()
) -> CourseListing:
    """The courses a sync covers: the sync list, else the account, term and state filters; with `only`,
    those of the named courses that the same selection covers."""
    selection = tenant.settings.courses
    root = tenant.root_account_id or "self"
    listed: list[CanvasCourse] = []
    missing: list[str] = []
    references = [str(course_id) for course_id in only] or list(selection.sync_list)
    if references:
        # A sync list names courses anywhere in the root account; filters look in their own account.
        account = root if selection.sync_list else (selection.account_id or root)
        for ref in references:
            try:
                item = client.get_one(GET_ACCOUNT_COURSE, [("include[]", "term")], account_id=account, id=ref)
            except CanvasNotFoundError:
                missing.append(ref)
                continue
            listed.append(CanvasCourse.model_validate(item))
    else:
        for query in course_listing_params(selection):
            items = client.get_all(LIST_ACCOUNT_COURSES, query, account_id=selection.account_id or root)
            listed.extend(CanvasCourse.model_validate(item) for item in items)
    courses: list[CanvasCourse] = []
    left_out: dict[int, OutOfScopeReason] = {}
    for course in {course.id: course for course in listed}.values():
        if course.workflow_state == "deleted":
            left_out[course.id] = OutOfScopeReason.NOT_IN_CANVAS
        elif course.concluded(now):
            left_out[course.id] = OutOfScopeReason.CONCLUDED
        elif only and not is_selected(tenant, course, now):
            left_out[course.id] = OutOfScopeReason.NOT_SELECTED
        else:
            courses.append(course)
    return CourseListing(courses, missing, left_out)


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
                "planning_canvas_requests": client.stats.requests,
            }
        )
        services.table.put_run(failed)
        if error.retryable:
            raise
        return failed
    courses = listing.courses
    now = datetime.now(UTC)
    # Only a full run knows the whole selection, so only a full run finds the courses that left it.
    left_scope = {} if request.course_ids else _mark_left_scope(services, tenant, run.run_id, listing, now)
    services.table.put_sync_errors(
        [
            *_not_synced_errors(tenant, run.run_id, listing, asked=bool(request.course_ids)),
            *(
                SyncError(
                    tenant_id=tenant.tenant_id,
                    run_id=run.run_id,
                    course_id=course_id,
                    code=SyncErrorCode.COURSE_OUT_OF_SCOPE.value,
                    message=f"course {course_id} {_why_out_of_scope(tenant, reason)}; its roster is kept, "
                    "marked out of scope, and left out of the export",
                )
                for course_id, reason in left_scope.items()
            ),
        ]
    )
    planned = run.model_copy(
        update={
            "status": RunStatus.RUNNING if courses else RunStatus.COMPLETED,
            "finished_at": None if courses else now,
            "courses_total": len(courses),
            "planning_canvas_requests": client.stats.requests,
            "courses_left_scope": dict(Counter(reason.value for reason in left_scope.values())),
        }
    )
    services.table.put_run(planned)
    # Before any message: a worker that finds no pending course closes the run.
    services.table.put_pending_courses(tenant.tenant_id, run.run_id, (course.id for course in courses))
    services.queues.send_course_messages(
        [
            CourseSyncMessage(tenant_id=tenant.tenant_id, run_id=run.run_id, course=course, planned_at=now)
            for course in courses
        ]
    )
    logger.info(
        "run planned",
        extra={
            "tenant_id": tenant.tenant_id,
            "run_id": run.run_id,
            "courses": len(courses),
            "courses_left_scope": len(left_scope),
        },
    )
    return planned


def _mark_left_scope(
    services: Services, tenant: Tenant, run_id: str, listing: CourseListing, now: datetime
) -> dict[int, OutOfScopeReason]:
    """Mark every stored course the listing no longer holds as out of scope (one query of the course
    rows, one write per course that newly left); returns those courses with their reasons."""
    selected = {course.id for course in listing.courses}
    sync_list, missing = set(tenant.settings.courses.sync_list), set(listing.missing)
    left: dict[int, OutOfScopeReason] = {}
    for row in services.table.list_course_rows(tenant.tenant_id):
        if row.course_id in selected or row.course is None:  # None: no committed roster to hide
            continue
        if row.out_of_scope is not None and row.out_of_scope.run_id != run_id:
            continue  # an earlier run marked it (this run's own marks count again on a redelivery)
        reason = listing.left_out.get(row.course_id)
        if reason is None and sync_list:
            sis_id = RosterCourse.model_validate_json(row.course.data).sis_course_id
            listed = {str(row.course_id), f"sis_course_id:{sis_id}"} & sync_list
            reason = OutOfScopeReason.NOT_IN_CANVAS if listed & missing else OutOfScopeReason.NOT_SELECTED
        left[row.course_id] = reason or OutOfScopeReason.NOT_SELECTED
    if left:
        services.table.mark_out_of_scope(tenant.tenant_id, {c: r.value for c, r in left.items()}, run_id, now)
        for hold in services.table.list_holds(tenant.tenant_id):
            if hold.course_id in left:  # nothing left to approve: the course is no longer synced
                services.table.delete_hold(tenant.tenant_id, hold.course_id)
    return left


def _why_out_of_scope(tenant: Tenant, reason: OutOfScopeReason) -> str:
    selection = tenant.settings.courses
    if reason is OutOfScopeReason.CONCLUDED:
        return "is concluded (by Canvas, or its term's or its own end date passed)"
    if reason is OutOfScopeReason.NOT_IN_CANVAS:
        return "of the sync list is no longer in Canvas (deleted, or not in this root account)"
    if selection.sync_list:
        return "is no longer on the course sync list"
    account = f"account {selection.account_id}" if selection.account_id else "the root account"
    states = "published" if selection.published_only else "published or unpublished"
    terms = f" in terms {', '.join(map(str, selection.term_ids))}" if selection.term_ids else ""
    return (
        f"is no longer among the {states} courses of {account}{terms} (moved to another account or "
        "term, unpublished or deleted in Canvas, or the selection changed)"
    )


def _not_synced_errors(
    tenant: Tenant, run_id: str, listing: CourseListing, *, asked: bool
) -> list[SyncError]:
    """Sync-list entries Canvas does not know; for a run of named courses, those it will not sync."""
    where = (
        "in the selected account" if asked and not tenant.settings.courses.sync_list else "in this account"
    )
    errors = [
        SyncError(
            tenant_id=tenant.tenant_id,
            run_id=run_id,
            code=SyncErrorCode.COURSE_NOT_FOUND.value,
            message=f"course {ref} {'' if asked else 'of the sync list '}is not in Canvas (or not {where})",
        )
        for ref in listing.missing
    ]
    if asked:
        errors += [
            SyncError(
                tenant_id=tenant.tenant_id,
                run_id=run_id,
                course_id=course_id,
                code=SyncErrorCode.COURSE_NOT_SELECTED.value,
                message=f"course {course_id} was not synced: it {_why_out_of_scope(tenant, reason)}",
            )
            for course_id, reason in listing.left_out.items()
        ]
    return errors


def _not_syncable(tenant: Tenant | None) -> str:
    if tenant is None:
        return "no such tenant"
    if tenant.status is TenantStatus.PENDING_AUTHORIZATION:
        return "the tenant has not authorized rostersync in Canvas yet"
    return f"the tenant must authorize again: {tenant.status_reason or 'Canvas refused its tokens'}"
