"""Models shared by handlers, logic and the data-access layer."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from rostersync.canvas.models import CanvasCourse


def utc_now() -> datetime:
    return datetime.now(UTC)


class TenantStatus(StrEnum):
    PENDING_AUTHORIZATION = "pending_authorization"
    ACTIVE = "active"
    NEEDS_REAUTHORIZATION = "needs_reauthorization"


class UserIdField(StrEnum):
    """Which Canvas field identifies a user downstream."""

    CANVAS_ID = "canvas_id"
    SIS_USER_ID = "sis_user_id"
    LOGIN_ID = "login_id"
    EMAIL = "email"


class Tenant(BaseModel):
    model_config = ConfigDict(frozen=True)

    tenant_id: str
    name: str
    canvas_url: str
    client_id: str
    status: TenantStatus = TenantStatus.PENDING_AUTHORIZATION
    status_reason: str | None = None
    allow_insecure_canvas: bool = False
    user_id_field: UserIdField = UserIdField.SIS_USER_ID
    root_account_id: int | None = None
    root_account_uuid: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    authorized_at: datetime | None = None

    @property
    def needs_emails(self) -> bool:
        # Enrollments embed users without email; only then is the extra users listing worth its requests.
        return self.user_id_field is UserIdField.EMAIL


class SyncTrigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"


class SyncRequest(BaseModel):
    """One tenant's full sync, as queued for the planner."""

    tenant_id: str
    run_id: str
    trigger: SyncTrigger


class CourseSyncMessage(BaseModel):
    """One course of a run, as queued for the course worker; carries the listing so it is not re-read."""

    tenant_id: str
    run_id: str
    course: CanvasCourse


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
    canvas_requests: int = 0
    started_at: datetime = Field(default_factory=utc_now)
    error_code: str | None = None
    error_message: str | None = None


class CourseOutcome(StrEnum):
    SUCCEEDED = "succeeded"
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
    courses_failed: int
    courses_pending: int
    changes: ChangeCounts
    canvas_requests: int
    canvas_throttled: int
    canvas_retries: int

    @property
    def finished(self) -> bool:
        return self.run.status in (RunStatus.COMPLETED, RunStatus.FAILED)


# The roster as stored and exported: the contract of `rostersync roster export` (shared/DESIGN.md).
class RosterCourse(BaseModel):
    canvas_id: int
    sis_course_id: str | None
    name: str
    workflow_state: str


class RosterSection(BaseModel):
    canvas_id: int
    name: str
    sis_section_id: str | None
    nonxlist_course_id: int | None


class RosterUser(BaseModel):
    canvas_id: int
    name: str
    sortable_name: str | None
    sis_user_id: str | None
    login_id: str | None
    email: str | None


class RosterEnrollment(BaseModel):
    canvas_id: int
    user_id: int
    section_id: int | None
    type: str
    role: str
    role_id: int | None
    state: str
    active: bool
    dropped_reason: str | None = None
    dropped_at: datetime | None = None
