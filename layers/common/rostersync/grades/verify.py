"""Read-back of a grade batch: what Canvas holds now for each grade we sent, compared with what we sent."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import CanvasNotFoundError, CanvasPermissionError
from rostersync.canvas.scopes import GET_SUBMISSION
from rostersync.connection import canvas_client_for, canvas_slot
from rostersync.grades.batches import UnknownBatchError
from rostersync.grades.submission import submission_changes
from rostersync.models import GradeAssignment, GradeEntry, GradeState, GradeStatus, TenantStatus
from rostersync.services import Services
from rostersync.store.grades import GradeStore
from rostersync.tenants import TenantError, require_tenant

# Grades Canvas should hold: sent by us, or already there when we looked (unchanged).
DELIVERED = frozenset({GradeState.SENT, GradeState.UNCHANGED})
# A submission PUT parameter -> the field it sets, as the differences name them.
_FIELDS = {
    "submission[posted_grade]": "grade",
    "submission[excuse]": "excused",
    "comment[text_comment]": "comment",
}


class Check(StrEnum):
    MATCHES = "matches"
    DIFFERS = "differs"
    MISSING = "missing"  # Canvas holds nothing of it: no grade, or the submission is gone


class CanvasValue(BaseModel):
    grade: str | None = None
    score: float | None = None
    excused: bool = False
    comments: list[str] | None = None  # None when the comments were not asked for (none sent)


class VerifiedGrade(BaseModel):
    index: int
    student: str
    canvas_user_id: int | None
    check: Check
    differs_in: list[str] = Field(default_factory=list)  # grade, excused, comment
    sent: dict[str, Any]  # the grade as submitted to us (score, grade, excused, comment)
    canvas: CanvasValue | None = None  # None when the submission could not be read


class BatchVerification(BaseModel):
    batch_id: str
    course_id: int
    canvas_assignment_id: int | None
    counts: dict[str, int]  # per Check, plus not_sent: grades never delivered (pending or failed)
    grades: list[VerifiedGrade]

    @property
    def all_match(self) -> bool:
        """Every grade of the batch is in Canvas as sent: none differs, none is missing, none unsent."""
        return self.counts["not_sent"] == 0 and all(grade.check is Check.MATCHES for grade in self.grades)


class VerifyNotPossibleError(TenantError):
    """The tenant cannot reach Canvas now (not authorized, or needs authorizing again)."""


def verify_batch(
    services: Services, tenant_id: str, batch_id: str, *, store: GradeStore | None = None
) -> BatchVerification:
    """Read back from Canvas every delivered grade of the batch (one GET submission per student)."""
    store = store or services.grades
    record = store.get_batch(tenant_id, batch_id)
    if record is None:
        raise UnknownBatchError(batch_id)
    tenant = require_tenant(services, tenant_id)
    if tenant.status is not TenantStatus.ACTIVE:
        raise VerifyNotPossibleError(f"tenant {tenant_id} is {tenant.status.value}")
    grades = store.grades(tenant_id, batch_id)
    delivered = [
        (grade.status, grade.entry)
        for grade in grades
        if grade.status.state in DELIVERED and grade.entry is not None
    ]
    assignment_id = record.canvas_assignment_id
    results: list[VerifiedGrade] = []
    if delivered and assignment_id is not None:
        client = canvas_client_for(services, tenant)
        with canvas_slot(services, tenant_id):
            for status, entry in delivered:
                current = _read(client, record.course_id, assignment_id, status, entry)
                results.append(_compare(status, entry, current, record.assignment))
    counts = Counter(result.check.value for result in results)
    return BatchVerification(
        batch_id=batch_id,
        course_id=record.course_id,
        canvas_assignment_id=assignment_id,
        counts={
            **{check.value: counts.get(check.value, 0) for check in Check},
            "not_sent": len(grades) - len(delivered),
        },
        grades=results,
    )


def _read(
    client: CanvasClient, course_id: int, assignment_id: int, status: GradeStatus, entry: GradeEntry
) -> dict[str, Any] | None:
    user_id = status.canvas_user_id
    if user_id is None:
        return None
    includes = [("include[]", "submission_comments")] if entry.comment else []
    try:
        found = client.get_one(
            GET_SUBMISSION, includes, course_id=course_id, assignment_id=assignment_id, user_id=user_id
        )
    except (CanvasNotFoundError, CanvasPermissionError):
        return None  # the assignment or the student's enrollment is gone
    return found if isinstance(found, dict) else None


def _compare(
    status: GradeStatus, entry: GradeEntry, current: dict[str, Any] | None, assignment: GradeAssignment
) -> VerifiedGrade:
    canvas: CanvasValue | None = None
    check, differs_in = Check.MISSING, []
    if current is not None:
        comments = current.get("submission_comments")
        canvas = CanvasValue(
            grade=current.get("grade"),
            score=current.get("score"),
            excused=bool(current.get("excused")),
            comments=[str(item.get("comment", "")) for item in comments if isinstance(item, dict)]
            if isinstance(comments, list)
            else None,
        )
        changes = submission_changes(
            entry, current, grading_type=assignment.grading_type, points_possible=assignment.points_possible
        )
        differs_in = [_FIELDS[name] for name, _ in changes]
        empty = canvas.grade is None and canvas.score is None and not canvas.excused and not canvas.comments
        check = Check.MATCHES if not changes else Check.MISSING if empty else Check.DIFFERS
    return VerifiedGrade(
        index=status.index,
        student=status.student,
        canvas_user_id=status.canvas_user_id,
        check=check,
        differs_in=differs_in,
        sent=entry.model_dump(mode="json", exclude_none=True, exclude={"student"}),
        canvas=canvas,
    )
