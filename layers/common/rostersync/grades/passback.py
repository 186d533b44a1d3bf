"""Grade passback: submit a batch (stored pending, queued), process it against Canvas, retry failures.

Processing is safe to repeat: only pending grades are sent, each grade's state is stored as soon as
Canvas answers, and a grade Canvas already has is not PUT again (state `unchanged`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import (
    AuthorizationError,
    CanvasError,
    CanvasNotFoundError,
    CanvasPermissionError,
    InsufficientScopeError,
)
from rostersync.canvas.scopes import CREATE_ASSIGNMENT, GET_SUBMISSION, GRADE_SUBMISSION, LIST_ASSIGNMENTS
from rostersync.connection import canvas_client_for, canvas_slot
from rostersync.grades.submission import Params, submission_changes
from rostersync.models import (
    GradeBatch,
    GradeBatchRecord,
    GradeMessage,
    GradeState,
    GradeStatus,
    RosterEnrollment,
    RosterRole,
    RosterUser,
    Tenant,
    TenantStatus,
)
from rostersync.services import Services
from rostersync.store.grades import GradeQueue, GradeStore, StoredGrade, grade_queue_for, grade_store_for
from rostersync.sync.course import RetryLater
from rostersync.sync.roster import user_identifier
from rostersync.tenants import require_tenant

logger = Logger(child=True)

NOT_ENROLLED = "not enrolled"
NOT_ASSIGNED = "not enrolled or not assigned"


class UnknownBatchError(LookupError):
    pass


def canvas_reason(error: CanvasError) -> str:
    """Canvas's own message for a refused request (the client prefixes the route and status)."""
    text = str(error)
    marker = f" answered {error.status}: "
    return text.split(marker, 1)[1] if error.status is not None and marker in text else text


# -- submitting --------------------------------------------------------------------------------------
def new_batch_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def submit_batch(
    services: Services,
    tenant_id: str,
    batch: GradeBatch,
    *,
    store: GradeStore | None = None,
    queue: GradeQueue | None = None,
) -> str:
    """Store the batch's grades as pending and queue it; returns the batch id."""
    require_tenant(services, tenant_id)
    students = [grade.student.strip().lower() for grade in batch.grades]
    duplicates = sorted({student for student in students if students.count(student) > 1})
    if duplicates:
        raise ValueError(f"students graded twice in one batch: {', '.join(duplicates[:5])}")
    batch_id = batch.batch_id or new_batch_id()
    record = GradeBatchRecord(
        tenant_id=tenant_id,
        batch_id=batch_id,
        course_id=batch.course_id,
        assignment=batch.assignment,
        size=len(batch.grades),
    )
    (store or grade_store_for(services)).put_batch(record, batch.grades)
    (queue or grade_queue_for(services)).send(GradeMessage(tenant_id=tenant_id, batch_id=batch_id))
    return batch_id


def retry_failed(
    services: Services,
    tenant_id: str,
    batch_id: str,
    *,
    store: GradeStore | None = None,
    queue: GradeQueue | None = None,
) -> int:
    """Queue the batch's failed grades again (only those); returns how many."""
    store = store or grade_store_for(services)
    if store.get_batch(tenant_id, batch_id) is None:
        raise UnknownBatchError(batch_id)
    failed = [
        grade.status for grade in store.grades(tenant_id, batch_id) if grade.status.state is GradeState.FAILED
    ]
    for status in failed:
        store.set_status(tenant_id, batch_id, _with(status, GradeState.PENDING, None))
    if failed:
        (queue or grade_queue_for(services)).send(
            GradeMessage(tenant_id=tenant_id, batch_id=batch_id, indexes=[status.index for status in failed])
        )
    return len(failed)


def batch_status(
    services: Services, tenant_id: str, batch_id: str, *, store: GradeStore | None = None
) -> dict[str, Any]:
    """The batch, its notes, counts per state and every grade's state (JSON-ready)."""
    store = store or grade_store_for(services)
    record = store.get_batch(tenant_id, batch_id)
    if record is None:
        raise UnknownBatchError(batch_id)
    statuses = [grade.status for grade in store.grades(tenant_id, batch_id)]
    counts = Counter(status.state.value for status in statuses)
    return {
        "batch_id": record.batch_id,
        "course_id": record.course_id,
        "assignment": record.assignment.model_dump(mode="json"),
        "canvas_assignment_id": record.canvas_assignment_id,
        "created_at": record.created_at.isoformat(),
        "notes": record.notes,
        "counts": {state.value: counts.get(state.value, 0) for state in GradeState},
        "grades": [
            status.model_dump(mode="json", exclude_none=True, exclude={"updated_at"}) for status in statuses
        ],
    }


# -- processing --------------------------------------------------------------------------------------
def _with(
    status: GradeStatus, state: GradeState, reason: str | None, user_id: int | None = None
) -> GradeStatus:
    return status.model_copy(
        update={
            "state": state,
            "reason": reason,
            "canvas_user_id": user_id if user_id is not None else status.canvas_user_id,
            "updated_at": datetime.now(UTC),
        }
    )


def course_students(services: Services, tenant: Tenant, course_id: int) -> dict[str, int]:
    """The stored roster's active students of a course: identifier (lower case) -> Canvas user id."""
    users: dict[int, RosterUser] = {}
    active_students: set[int] = set()
    for sk, item in services.table.course_items(tenant.tenant_id, course_id).items():
        if sk.startswith("USER#"):
            user = RosterUser.model_validate_json(item.data)
            if user.sync_error is None:
                users[user.canvas_id] = user
        elif sk.startswith("ENROLLMENT#"):
            enrollment = RosterEnrollment.model_validate_json(item.data)
            if enrollment.active and enrollment.roster_role is RosterRole.STUDENT:
                active_students.add(enrollment.user_id)
    students: dict[str, int] = {}
    for user_id in active_students:
        found = users.get(user_id)
        identifier = user_identifier(found, tenant.settings.user_id_field) if found else None
        if identifier is not None:
            students[identifier] = user_id
    return students


def ensure_assignment(
    client: CanvasClient, store: GradeStore, record: GradeBatchRecord
) -> tuple[int, str | None]:
    """The Canvas assignment for the batch (found, or created published); a note when it was recreated."""
    assignment = record.assignment
    remembered = store.assignment_id(record.tenant_id, record.course_id, assignment.external_id)
    if remembered is not None:
        try:
            found = client.get_all(
                LIST_ASSIGNMENTS, [("assignment_ids[]", str(remembered))], course_id=record.course_id
            )
        except CanvasNotFoundError:
            found = []
        if any(isinstance(item, dict) and item.get("id") == remembered for item in found):
            return remembered, None
    params: Params = [
        ("assignment[name]", assignment.name),
        ("assignment[grading_type]", assignment.grading_type),
        ("assignment[published]", "true"),
        ("assignment[submission_types][]", "none"),
        ("assignment[integration_id]", f"rostersync:{assignment.external_id}"),
    ]
    if assignment.points_possible is not None:
        params.append(("assignment[points_possible]", f"{assignment.points_possible:g}"))
    created = client.write(CREATE_ASSIGNMENT, params, course_id=record.course_id)
    canvas_id = int(created["id"])
    store.remember_assignment(record.tenant_id, record.course_id, assignment.external_id, canvas_id)
    note = None
    if remembered is not None:
        note = (
            f"assignment {assignment.external_id!r} (Canvas id {remembered}) is no longer in Canvas; "
            f"created it again as Canvas id {canvas_id}"
        )
    return canvas_id, note


def pass_grade(
    client: CanvasClient,
    record: GradeBatchRecord,
    assignment_id: int,
    students: dict[str, int],
    grade: StoredGrade,
) -> GradeStatus:
    """Send one grade if Canvas does not have it yet. Transient and grant-wide errors propagate."""
    status, entry = grade.status, grade.entry
    user_id = students.get(entry.student.strip().lower())
    if user_id is None:
        return _with(status, GradeState.FAILED, NOT_ENROLLED)
    path = {"course_id": record.course_id, "assignment_id": assignment_id, "user_id": user_id}
    try:
        includes = [("include[]", "submission_comments")] if entry.comment else []
        current = client.get_one(GET_SUBMISSION, includes, **path)
        changes = submission_changes(
            entry,
            current,
            grading_type=record.assignment.grading_type,
            points_possible=record.assignment.points_possible,
        )
        if not changes:
            return _with(status, GradeState.UNCHANGED, None, user_id)
        client.write(GRADE_SUBMISSION, changes, **path)
    except (InsufficientScopeError, AuthorizationError):
        raise
    except (CanvasPermissionError, CanvasNotFoundError):
        return _with(status, GradeState.FAILED, NOT_ASSIGNED, user_id)
    except CanvasError as error:
        if error.retryable:
            raise
        return _with(status, GradeState.FAILED, canvas_reason(error), user_id)
    return _with(status, GradeState.SENT, None, user_id)


def process_batch(
    services: Services, message: GradeMessage, *, store: GradeStore | None = None
) -> dict[str, int]:
    """Send a batch's pending grades (those of `message.indexes` when given); counts per state.

    Raises RetryLater when Canvas is unavailable: what was sent is recorded, the rest waits for SQS.
    """
    store = store or grade_store_for(services)
    tenant_id, batch_id = message.tenant_id, message.batch_id
    record = store.get_batch(tenant_id, batch_id)
    if record is None:
        logger.warning("grade batch not found", extra={"tenant_id": tenant_id, "batch_id": batch_id})
        return {}
    wanted = set(message.indexes) if message.indexes is not None else None
    todo = [
        grade
        for grade in store.grades(tenant_id, batch_id)
        if grade.status.state is GradeState.PENDING and (wanted is None or grade.status.index in wanted)
    ]
    counts: Counter[str] = Counter()
    if not todo:
        return dict(counts)

    def finish(status: GradeStatus) -> None:
        store.set_status(tenant_id, batch_id, status)
        counts[status.state.value] += 1

    tenant = services.table.get_tenant(tenant_id)
    if tenant is None or tenant.status is not TenantStatus.ACTIVE:
        reason = "unknown tenant" if tenant is None else tenant.status.value
        for grade in todo:
            finish(_with(grade.status, GradeState.FAILED, reason))
        return dict(counts)
    client = canvas_client_for(services, tenant)
    remaining = list(todo)
    try:
        with canvas_slot(services, tenant_id):
            assignment_id, note = ensure_assignment(client, store, record)
            if assignment_id != record.canvas_assignment_id:
                store.set_batch_assignment(tenant_id, batch_id, assignment_id)
            if note:
                store.add_note(tenant_id, batch_id, note)
            students = course_students(services, tenant, record.course_id)
            while remaining:
                finish(pass_grade(client, record, assignment_id, students, remaining[0]))
                remaining.pop(0)
    except CanvasError as error:
        if error.retryable:
            raise RetryLater(str(error)) from error
        # A refusal for the whole batch (missing scope, revoked grant, course gone): every grade left fails.
        reason = (
            error.code
            if isinstance(error, InsufficientScopeError | AuthorizationError)
            else canvas_reason(error)
        )
        for grade in remaining:
            finish(_with(grade.status, GradeState.FAILED, reason))
    logger.info(
        "grade batch processed",
        extra={
            "tenant_id": tenant_id,
            "batch_id": batch_id,
            "counts": dict(counts),
            "canvas_requests": client.stats.requests,
        },
    )
    return dict(counts)
