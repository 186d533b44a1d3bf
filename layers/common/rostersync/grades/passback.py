"""Grade passback: submit a batch (stored pending, queued), process it against Canvas, retry failures.

Processing is safe to repeat: only pending grades are sent, each grade's state is stored as soon as
Canvas answers, and a grade Canvas already has is not PUT again (state `unchanged`).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import (
    AuthorizationError,
    CanvasError,
    CanvasNotFoundError,
    CanvasPermissionError,
    CanvasUnavailableError,
    CanvasWriteUncertainError,
    InsufficientScopeError,
)
from rostersync.canvas.scopes import (
    CREATE_ASSIGNMENT,
    GET_SUBMISSION,
    GRADE_SUBMISSION,
    LIST_ASSIGNMENTS,
)
from rostersync.connection import canvas_client_for, canvas_slot, read_account_course
from rostersync.errors import RetryLaterError
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
from rostersync.store.grades import (
    INVALID_GRADE,
    GradeQueue,
    GradeStore,
    StoredGrade,
)
from rostersync.sync.roster import user_identifier
from rostersync.tenants import require_tenant

logger = Logger(child=True)


def not_enrolled(identified_by: str) -> str:
    return f"no enrolled student with this {identified_by} (the tenant's user identifier field)"


NOT_ASSIGNED = "not enrolled or not assigned"
COMMENTS_HIDDEN = (
    "Canvas did not return the submission's comments (the developer key needs Allow Include Parameters), "
    "so the comment was not sent: it might already be there"
)
# Times a grade is read and sent while Canvas leaves the outcome of the PUT unknown (5xx, timeout).
SEND_ATTEMPTS = 3
# How long a claim to create an assignment holds before another worker may take it over (its worker died).
CLAIM_STALE_AFTER = timedelta(minutes=5)
CLAIM_POLL_SECONDS = 0.5
CLAIM_POLLS = 40  # a worker waits this many polls for another worker's creation, then retries later


class Reason:
    """Reason codes of failed grades."""

    NOT_ENROLLED = "not_enrolled"
    NOT_ASSIGNED = "not_assigned"
    CANVAS_REFUSED = "canvas_refused"
    COMMENTS_HIDDEN = "comments_hidden"
    COURSE_UNPUBLISHED = "course_unpublished"
    COURSE_CONCLUDED = "course_concluded"
    # and store.grades.INVALID_GRADE: a grade that older code stored invalid (read as failed)


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
    """Store the batch's grades as pending under a new batch id and queue it; returns the id."""
    require_tenant(services, tenant_id)
    batch_id = new_batch_id()
    record = GradeBatchRecord(
        tenant_id=tenant_id,
        batch_id=batch_id,
        course_id=batch.course_id,
        assignment=batch.assignment,
        size=len(batch.grades),
    )
    (store or services.grades).put_batch(record, batch.grades)
    (queue or services.grade_queue).send(GradeMessage(tenant_id=tenant_id, batch_id=batch_id))
    return batch_id


# Failures a resend cannot cure: the grade itself must change (push it again corrected).
NOT_RETRYABLE = frozenset({Reason.NOT_ENROLLED, INVALID_GRADE})


@dataclass(frozen=True)
class RetryOutcome:
    requeued: int
    left_failed: dict[str, int]  # failed grades not queued again, per reason code

    def as_dict(self, batch_id: str) -> dict[str, Any]:
        return {"batch_id": batch_id, "requeued": self.requeued, "left_failed": self.left_failed}


def retry_failed(
    services: Services,
    tenant_id: str,
    batch_id: str,
    *,
    store: GradeStore | None = None,
    queue: GradeQueue | None = None,
) -> RetryOutcome:
    """Queue the batch's failed grades again, those a resend may cure (a missing student does not)."""
    store = store or services.grades
    if store.get_batch(tenant_id, batch_id) is None:
        raise UnknownBatchError(batch_id)
    failed = [grade for grade in store.grades(tenant_id, batch_id) if grade.status.state is GradeState.FAILED]
    retried = [
        grade.status
        for grade in failed
        if grade.entry is not None and grade.status.reason_code not in NOT_RETRYABLE
    ]
    for status in retried:
        store.set_status(tenant_id, batch_id, _with(status, GradeState.PENDING))
    if retried:
        (queue or services.grade_queue).send(
            GradeMessage(tenant_id=tenant_id, batch_id=batch_id, indexes=[status.index for status in retried])
        )
    left = Counter(grade.status.reason_code or "unknown" for grade in failed if grade.status not in retried)
    return RetryOutcome(len(retried), dict(sorted(left.items())))


def batch_status(
    services: Services, tenant_id: str, batch_id: str, *, store: GradeStore | None = None
) -> dict[str, Any]:
    """The batch, its notes, counts per state and every grade's state (JSON-ready)."""
    store = store or services.grades
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
    status: GradeStatus,
    state: GradeState,
    reason: str | None = None,
    user_id: int | None = None,
    *,
    code: str | None = None,
) -> GradeStatus:
    return status.model_copy(
        update={
            "state": state,
            "reason": reason,
            "reason_code": code,
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


# -- the assignment -------------------------------------------------------------------------------------
def assignment_marker(external_id: str) -> str:
    """The integration_id our assignments carry in Canvas, so that one can be found again without the map."""
    return f"rostersync:{external_id}"


def _assignment_exists(client: CanvasClient, course_id: int, assignment_id: int) -> bool:
    try:
        found = client.get_all(
            LIST_ASSIGNMENTS, [("assignment_ids[]", str(assignment_id))], course_id=course_id
        )
    except CanvasNotFoundError:
        return False
    return any(isinstance(item, dict) and item.get("id") == assignment_id for item in found)


def _marked_assignment(client: CanvasClient, record: GradeBatchRecord) -> int | None:
    """Our assignment as Canvas lists it (by its integration_id), e.g. created by a worker that then died."""
    marker = assignment_marker(record.assignment.external_id)
    ids = [
        int(item["id"])
        for item in client.get_all(LIST_ASSIGNMENTS, course_id=record.course_id)
        if isinstance(item, dict) and item.get("integration_id") == marker
    ]
    return min(ids) if ids else None


def _find_or_create(client: CanvasClient, record: GradeBatchRecord) -> int:
    """Our assignment in Canvas: found by its marker, or created published. A POST whose outcome is
    unknown (5xx, timeout) is never repeated blind: the marker lookup runs again first."""
    assignment = record.assignment
    params: Params = [
        ("assignment[name]", assignment.name),
        ("assignment[grading_type]", assignment.grading_type),
        ("assignment[published]", "true"),
        ("assignment[submission_types][]", "none"),
        ("assignment[integration_id]", assignment_marker(assignment.external_id)),
    ]
    if assignment.points_possible is not None:
        params.append(("assignment[points_possible]", f"{assignment.points_possible:g}"))
    for _ in range(SEND_ATTEMPTS):
        found = _marked_assignment(client, record)
        if found is not None:
            return found
        try:
            return int(client.write(CREATE_ASSIGNMENT, params, course_id=record.course_id)["id"])
        except CanvasWriteUncertainError as error:
            logger.warning("assignment creation outcome unknown; looking it up", extra={"error": str(error)})
    raise CanvasUnavailableError(
        f"creating assignment {assignment.external_id!r} failed {SEND_ATTEMPTS} times"
    )


def ensure_assignment(
    client: CanvasClient,
    store: GradeStore,
    record: GradeBatchRecord,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, str | None]:
    """The batch's Canvas assignment (mapped, found or created published); a note when it was recreated.

    Creation is claimed first with a conditional write, so two batches for the same new assignment create
    one Canvas assignment: the other waits for the winner's mapping and uses it.
    """
    tenant_id, course_id, external_id = record.tenant_id, record.course_id, record.assignment.external_id
    gone: int | None = None  # a mapped id that Canvas no longer has
    for _ in range(CLAIM_POLLS):
        mapping = store.assignment_mapping(tenant_id, course_id, external_id)
        mapped = mapping.canvas_assignment_id if mapping else None
        if mapped is not None and mapped != gone:
            if _assignment_exists(client, course_id, mapped):
                return mapped, _recreated_note(external_id, gone, mapped)
            gone = mapped
        owner = uuid.uuid4().hex
        if store.claim_assignment(
            tenant_id, course_id, external_id, owner, replacing=gone, stale_after=CLAIM_STALE_AFTER
        ):
            try:
                canvas_id = _find_or_create(client, record)
            except BaseException:
                store.release_assignment_claim(tenant_id, course_id, external_id, owner)
                raise
            if store.remember_assignment(tenant_id, course_id, external_id, canvas_id, owner):
                return canvas_id, _recreated_note(external_id, gone, canvas_id)
            # Our claim went stale and was taken over; the new holder looks the marker up and adopts ours.
        sleep(CLAIM_POLL_SECONDS)
    raise RetryLaterError(f"assignment {external_id!r} is still being created by another worker")


def _recreated_note(external_id: str, gone: int | None, canvas_id: int) -> str | None:
    if gone is None:
        return None
    return (
        f"assignment {external_id!r} (Canvas id {gone}) is no longer in Canvas; "
        f"created it again as Canvas id {canvas_id}"
    )


# -- one grade ------------------------------------------------------------------------------------------
def pass_grade(
    client: CanvasClient,
    record: GradeBatchRecord,
    assignment_id: int,
    students: dict[str, int],
    grade: StoredGrade,
    *,
    identified_by: str = "sis_user_id",
) -> GradeStatus:
    """Send one grade if Canvas does not have it yet. Transient and grant-wide errors propagate.

    When Canvas leaves a PUT's outcome unknown (5xx, timeout: it may have landed), the submission is read
    again and only what is still missing is sent, so a comment is never posted twice.
    """
    status, entry = grade.status, grade.entry
    if entry is None:
        return status  # stored invalid: the store reads it as failed, with its reason
    user_id = students.get(entry.student.strip().lower())
    if user_id is None:
        return _with(status, GradeState.FAILED, not_enrolled(identified_by), code=Reason.NOT_ENROLLED)
    path = {"course_id": record.course_id, "assignment_id": assignment_id, "user_id": user_id}
    includes = [("include[]", "submission_comments")] if entry.comment else []
    try:
        for attempt in range(SEND_ATTEMPTS):
            current = client.get_one(GET_SUBMISSION, includes, **path)
            if entry.comment and "submission_comments" not in current:
                return _with(status, GradeState.FAILED, COMMENTS_HIDDEN, user_id, code=Reason.COMMENTS_HIDDEN)
            changes = submission_changes(
                entry,
                current,
                grading_type=record.assignment.grading_type,
                points_possible=record.assignment.points_possible,
            )
            if not changes:
                # Already there: before any PUT (unchanged), or an unanswered PUT of ours landed (sent).
                return _with(status, GradeState.UNCHANGED if attempt == 0 else GradeState.SENT, None, user_id)
            try:
                client.write(GRADE_SUBMISSION, changes, **path)
            except CanvasWriteUncertainError as error:
                logger.warning("grade PUT outcome unknown; reading it back", extra={"error": str(error)})
                continue
            return _with(status, GradeState.SENT, None, user_id)
    except (InsufficientScopeError, AuthorizationError):
        raise
    except (CanvasPermissionError, CanvasNotFoundError):
        return _with(status, GradeState.FAILED, NOT_ASSIGNED, user_id, code=Reason.NOT_ASSIGNED)
    except CanvasError as error:
        if error.retryable:
            raise
        return _with(status, GradeState.FAILED, canvas_reason(error), user_id, code=Reason.CANVAS_REFUSED)
    raise CanvasUnavailableError(f"Canvas left the outcome of {SEND_ATTEMPTS} grade PUTs unknown")


# -- a closed course -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CourseClosed:
    code: str
    message: str


def course_closed(client: CanvasClient, tenant: Tenant, course_id: int) -> CourseClosed | None:
    """Why Canvas refuses grades for the course, when the course's state explains it (else None).

    Canvas answers a grade or an assignment in an unpublished or concluded course with its generic
    "user not authorized"; the course's own state tells the teacher what to do about it.
    """
    course = read_account_course(client, tenant, course_id)
    if course is None:
        return None
    if course.workflow_state == "unpublished":
        return CourseClosed(
            Reason.COURSE_UNPUBLISHED,
            f"course {course_id} ({course.real_name}) is unpublished in Canvas; publish it, then retry",
        )
    if course.concluded(datetime.now(UTC)):
        return CourseClosed(
            Reason.COURSE_CONCLUDED,
            f"course {course_id} ({course.real_name}) is concluded in Canvas and takes no grades; "
            "reopen it (or extend its end date), then retry",
        )
    return None


def process_batch(
    services: Services, message: GradeMessage, *, store: GradeStore | None = None
) -> dict[str, int]:
    """Send a batch's pending grades (those of `message.indexes` when given); counts per state.

    Raises RetryLaterError when Canvas is unavailable: what was sent is recorded, the rest waits for SQS.
    """
    store = store or services.grades
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
            finish(_with(grade.status, GradeState.FAILED, reason, code=reason.replace(" ", "_")))
        return dict(counts)
    client = canvas_client_for(services, tenant)
    remaining = list(todo)
    try:
        with canvas_slot(services, tenant_id):
            try:
                assignment_id, note = ensure_assignment(client, store, record)
            except CanvasPermissionError:
                closed = course_closed(client, tenant, record.course_id)
                if closed is None:
                    raise
                _fail_all(remaining, closed.message, closed.code, finish)
                return dict(counts)
            if assignment_id != record.canvas_assignment_id:
                store.set_batch_assignment(tenant_id, batch_id, assignment_id)
            if note:
                store.add_note(tenant_id, batch_id, note)
            students = course_students(services, tenant, record.course_id)
            _send_grades(client, tenant, record, assignment_id, students, remaining, finish)
    except CanvasError as error:
        if error.retryable:
            raise RetryLaterError(str(error)) from error
        # A refusal for the whole batch (missing scope, revoked grant, course gone): every grade left fails.
        if isinstance(error, InsufficientScopeError | AuthorizationError):
            _fail_all(remaining, error.code, error.code, finish)
        else:
            _fail_all(remaining, canvas_reason(error), Reason.CANVAS_REFUSED, finish)
    finally:
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


def _send_grades(  # noqa: PLR0917 - process_batch's loop, apart
    client: CanvasClient,
    tenant: Tenant,
    record: GradeBatchRecord,
    assignment_id: int,
    students: dict[str, int],
    remaining: list[StoredGrade],
    finish: Callable[[GradeStatus], None],
) -> None:
    """Send the grades in order, removing each from `remaining` once its state is stored."""
    course_checked = False
    while remaining:
        status = pass_grade(
            client,
            record,
            assignment_id,
            students,
            remaining[0],
            identified_by=tenant.settings.user_id_field.value,
        )
        if status.reason_code == Reason.NOT_ASSIGNED and not course_checked:
            # Canvas refused this student, or (when the course is closed) it refuses every grade.
            course_checked = True
            closed = course_closed(client, tenant, record.course_id)
            if closed is not None:
                _fail_all(remaining, closed.message, closed.code, finish)
                remaining.clear()
                return
        finish(status)
        remaining.pop(0)


def _fail_all(
    grades: list[StoredGrade], reason: str, code: str, finish: Callable[[GradeStatus], None]
) -> None:
    for grade in grades:
        finish(_with(grade.status, GradeState.FAILED, reason, code=code))
