"""Grade passback: a submitted batch, each grade's status, and the queued work."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rostersync.models.base import CanvasId, utc_now


class GradeState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    UNCHANGED = "unchanged"
    FAILED = "failed"


class GradeAssignment(BaseModel):
    """The assignment grades go to, named by our own id; created in Canvas on first use."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    external_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=255)
    points_possible: float | None = Field(default=None, ge=0)
    grading_type: str = "points"


class GradeEntry(BaseModel):
    """One student's grade: a score, a grade (as Canvas's posted_grade) or excused; a comment optional."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    student: str = Field(min_length=1)  # the tenant's user identifier (TenantSettings.user_id_field)
    score: float | None = None
    grade: str | None = None
    excused: bool = False
    comment: str | None = None

    @model_validator(mode="after")
    def _one_grade(self) -> GradeEntry:
        given = sum((self.score is not None, self.grade not in (None, ""), self.excused))
        if given > 1:
            raise ValueError("give one of score, grade or excused")
        if given == 0 and not self.comment:
            raise ValueError("give a score, a grade, excused or a comment")
        return self


class GradeBatch(BaseModel):
    """Grades as submitted. The batch's id is assigned when it is stored, never taken from the client."""

    model_config = ConfigDict(allow_inf_nan=False, extra="forbid")

    tenant_id: str
    # The API's: the same key with the same batch answers the first push's batch id, with another is refused.
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    course_id: CanvasId
    assignment: GradeAssignment
    grades: list[GradeEntry] = Field(min_length=1, max_length=10_000)

    @field_validator("grades")
    @classmethod
    def _each_student_once(cls, grades: list[GradeEntry]) -> list[GradeEntry]:
        counts = Counter(grade.student.strip().lower() for grade in grades)
        twice = sorted(student for student, count in counts.items() if count > 1)
        if twice:
            named = ", ".join(repr(student) for student in twice[:5])
            more = f" and {len(twice) - 5} more" if len(twice) > 5 else ""
            raise ValueError(f"students graded twice in one batch: {named}{more}")
        return grades


class GradeStatus(BaseModel):
    """Where one grade of a batch stands."""

    index: int
    student: str
    state: GradeState = GradeState.PENDING
    reason: str | None = None  # for people: why it failed
    reason_code: str | None = None  # for programs: e.g. not_enrolled, course_concluded
    canvas_user_id: int | None = None
    updated_at: datetime = Field(default_factory=utc_now)


class GradeBatchRecord(BaseModel):
    """A submitted batch: what it is for, where it went, and notes for the people who sent it."""

    tenant_id: str
    batch_id: str
    course_id: int
    assignment: GradeAssignment
    size: int
    created_at: datetime = Field(default_factory=utc_now)
    canvas_assignment_id: int | None = None
    notes: list[str] = Field(default_factory=list)


class GradeMessage(BaseModel):
    """One SQS message: a batch to (re)process. `indexes` limits it to some grades (a retry)."""

    tenant_id: str
    batch_id: str
    indexes: list[int] | None = None
