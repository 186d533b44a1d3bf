"""Grade passback: process a batch against Canvas, sending its pending grades one at a time.

Processing is safe to repeat: only pending grades are sent, each grade's state is stored as soon as
Canvas answers, and a grade Canvas already has is not PUT again (state `unchanged`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

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
from rostersync.canvas.scopes import GET_SUBMISSION, GRADE_SUBMISSION
from rostersync.connection import canvas_client_for, canvas_slot, read_account_course
from rostersync.errors import RetryLaterError
from rostersync.grades.assignments import ensure_assignment
from rostersync.grades.batches import COMMENTS_HIDDEN, NOT_ASSIGNED, Reason, not_enrolled, with_state
from rostersync.grades.submission import submission_changes
from rostersync.models import (
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
from rostersync.store.grades import GradeStore, StoredGrade
from rostersync.store.keys import ENROLLMENT_PREFIX, USER_PREFIX
from rostersync.sync.roster import user_identifier

logger = Logger(child=True)

# Times a grade is read and sent while Canvas leaves the outcome of the PUT unknown (5xx, timeout).
SEND_ATTEMPTS = 3


def canvas_reason(error: CanvasError) -> str:
    """Canvas's own message for a refused request (the client prefixes the route and status)."""
    text = str(error)
    marker = f" answered {error.status}: "
    return text.split(marker, 1)[1] if error.status is not None and marker in text else text


def course_students(services: Services, tenant: Tenant, course_id: int) -> dict[str, int]:
    """The stored roster's active students of a course: identifier (lower case) -> Canvas user id."""
    users: dict[int, RosterUser] = {}
    active_students: set[int] = set()
    for sk, item in services.table.course_items(tenant.tenant_id, course_id).items():
        if sk.startswith(USER_PREFIX):
            user = RosterUser.model_validate_json(item.data)
            if user.sync_error is None:
                users[user.canvas_id] = user
        elif sk.startswith(ENROLLMENT_PREFIX):
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
        return with_state(status, GradeState.FAILED, not_enrolled(identified_by), code=Reason.NOT_ENROLLED)
    path = {"course_id": record.course_id, "assignment_id": assignment_id, "user_id": user_id}
    includes = [("include[]", "submission_comments")] if entry.comment else []
    try:
        for attempt in range(SEND_ATTEMPTS):
            current = client.get_one(GET_SUBMISSION, includes, **path)
            if entry.comment and "submission_comments" not in current:
                return with_state(
                    status, GradeState.FAILED, COMMENTS_HIDDEN, user_id, code=Reason.COMMENTS_HIDDEN
                )
            changes = submission_changes(
                entry,
                current,
                grading_type=record.assignment.grading_type,
                points_possible=record.assignment.points_possible,
            )
            if not changes:
                # Already there: before any PUT (unchanged), or an unanswered PUT of ours landed (sent).
                return with_state(
                    status, GradeState.UNCHANGED if attempt == 0 else GradeState.SENT, None, user_id
                )
            try:
                client.write(GRADE_SUBMISSION, changes, **path)
            except CanvasWriteUncertainError as error:
                logger.warning("grade PUT outcome unknown; reading it back", extra={"error": str(error)})
                continue
            return with_state(status, GradeState.SENT, None, user_id)
    except (InsufficientScopeError, AuthorizationError):
        raise
    except (CanvasPermissionError, CanvasNotFoundError):
        return with_state(status, GradeState.FAILED, NOT_ASSIGNED, user_id, code=Reason.NOT_ASSIGNED)
    except CanvasError as error:
        if error.retryable:
            raise
        return with_state(
            status, GradeState.FAILED, canvas_reason(error), user_id, code=Reason.CANVAS_REFUSED
        )
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
            finish(with_state(grade.status, GradeState.FAILED, reason, code=reason.replace(" ", "_")))
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
        finish(with_state(grade.status, GradeState.FAILED, reason, code=code))
