"""Sync runs: the queued requests and messages, each course's result, and what could not sync."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AliasChoices, BaseModel, Field

from rostersync.canvas.models import CanvasCourse
from rostersync.models.base import utc_now


class SyncTrigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    LIVE_EVENT = "live_event"


class SyncRequest(BaseModel):
    """A tenant's sync, as queued for the planner: every selected course, or just the ones named."""

    tenant_id: str
    run_id: str
    trigger: SyncTrigger
    course_ids: tuple[int, ...] = ()


class CourseSyncMessage(BaseModel):
    """One course of a run, as queued for the course worker; carries the listing so it is not re-read."""

    tenant_id: str
    run_id: str
    course: CanvasCourse
    # When the planner found the course in the tenant's selection: it brings back a course marked out of
    # scope before then. None for a live event's course (not checked against the account filter).
    planned_at: datetime | None = None


class RunStatus(StrEnum):
    PLANNING = "planning"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class SyncRun(BaseModel):
    tenant_id: str
    run_id: str
    trigger: SyncTrigger
    status: RunStatus = RunStatus.PLANNING
    courses_total: int = 0
    # The planner's own Canvas requests (listing the courses); a run summary's canvas_requests adds the
    # courses' to them. Rows stored before the rename call it canvas_requests.
    planning_canvas_requests: int = Field(
        default=0, validation_alias=AliasChoices("planning_canvas_requests", "canvas_requests")
    )
    started_at: datetime = Field(default_factory=utc_now)
    finished_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    # Stored courses this run found outside the tenant's selection and marked out of scope, by reason.
    courses_left_scope: dict[str, int] = Field(default_factory=dict)

    @property
    def duration_seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None

    @property
    def finished(self) -> bool:
        return self.status in (RunStatus.COMPLETED, RunStatus.FAILED)


class CourseOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    HELD = "held"  # synced except a mass drop that waits for an admin
    RETRYING = "retrying"
    FAILED = "failed"


class ChangeCounts(BaseModel):
    created: int = 0
    updated: int = 0
    dropped: int = 0
    unchanged: int = 0


class CourseResult(BaseModel):
    tenant_id: str
    run_id: str
    course_id: int
    outcome: CourseOutcome
    attempt: int = 1
    changes: ChangeCounts = Field(default_factory=ChangeCounts)
    canvas_requests: int = 0
    canvas_throttled: int = 0
    canvas_retries: int = 0
    error_code: str | None = None
    error_message: str | None = None
    finished_at: datetime = Field(default_factory=utc_now)

    @property
    def is_final(self) -> bool:
        return self.outcome is not CourseOutcome.RETRYING


class RunSummary(BaseModel):
    """A run with what its course results add up to (derived, never stored)."""

    run: SyncRun
    courses_succeeded: int
    courses_held: int
    courses_failed: int
    courses_pending: int
    changes: ChangeCounts
    canvas_requests: int  # the whole run's: the planner's and every course's
    canvas_throttled: int
    canvas_retries: int

    @property
    def finished(self) -> bool:
        return self.run.finished


class SyncErrorCode(StrEnum):
    MISSING_IDENTIFIER = "missing_identifier"
    DUPLICATE_IDENTIFIER = "duplicate_identifier"
    EMAIL_HIDDEN = "email_hidden"
    COURSE_NOT_FOUND = "course_not_found"
    COURSE_NOT_SELECTED = "course_not_selected"
    COURSE_OUT_OF_SCOPE = "course_out_of_scope"
    HELD_FOR_APPROVAL = "held_for_approval"
    DROPS_REJECTED = "drops_rejected"


class SyncError(BaseModel):
    """One thing a run could not sync, with a reason an admin can act on (per user where it applies)."""

    tenant_id: str
    run_id: str
    course_id: int | None = None
    user_id: int | None = None
    code: str
    message: str
    recorded_at: datetime = Field(default_factory=utc_now)
