"""Models shared by handlers, logic and the data-access layer."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from rostersync.canvas.models import CanvasCourse


def utc_now() -> datetime:
    return datetime.now(UTC)


# Canvas ids are positive 64-bit integers: anything longer is not an id (and would not fit DynamoDB's
# 38-digit numbers), and only ASCII digits spell one (Arabic-Indic or fullwidth digits do not).
CANVAS_ID_MAX = 2**63 - 1
CanvasId = Annotated[int, Field(ge=1, le=CANVAS_ID_MAX)]
_CANVAS_ID_TEXT = re.compile(r"[1-9][0-9]{0,18}")


def parse_canvas_id(text: str) -> int | None:
    """A Canvas id written in a path or a file, or None when the text is not one."""
    if not _CANVAS_ID_TEXT.fullmatch(text):
        return None
    value = int(text)
    return value if value <= CANVAS_ID_MAX else None


# A course sync list lives in the tenant's one DynamoDB item (400 KB at most): bounded well below it.
MAX_SYNC_LIST_COURSES = 4000
DAILY_AT = re.compile(r"([01]\d|2[0-3]):[0-5]\d")  # HH:MM, 24-hour
CourseReference = Annotated[str, StringConstraints(min_length=1, max_length=80)]


class TenantStatus(StrEnum):
    NOT_CONFIGURED = "not_configured"  # created by an operator; its admin has not saved Canvas settings yet
    PENDING_AUTHORIZATION = "pending_authorization"
    ACTIVE = "active"
    NEEDS_REAUTHORIZATION = "needs_reauthorization"


class UserIdField(StrEnum):
    """Which Canvas field identifies a user downstream."""

    CANVAS_ID = "canvas_id"
    SIS_USER_ID = "sis_user_id"
    LOGIN_ID = "login_id"
    EMAIL = "email"


class CourseIdField(StrEnum):
    """Which Canvas field identifies a course downstream."""

    CANVAS_ID = "canvas_id"
    SIS_COURSE_ID = "sis_course_id"
    COURSE_CODE = "course_code"


class RosterRole(StrEnum):
    STUDENT = "student"
    INSTRUCTOR = "instructor"
    COURSE_ADMIN = "course_admin"
    EXCLUDED = "excluded"


# Canvas's base enrollment types; custom course roles keep their base type.
DEFAULT_ROLE_MAP: dict[str, RosterRole] = {
    "StudentEnrollment": RosterRole.STUDENT,
    "TeacherEnrollment": RosterRole.INSTRUCTOR,
    "TaEnrollment": RosterRole.INSTRUCTOR,
    "DesignerEnrollment": RosterRole.COURSE_ADMIN,
    "ObserverEnrollment": RosterRole.EXCLUDED,
}


class CourseSelection(BaseModel):
    """Which courses a full sync reads."""

    model_config = ConfigDict(frozen=True)

    account_id: CanvasId | None = None  # a sub-account (its own sub-accounts included); None = the root
    term_ids: tuple[CanvasId, ...] = Field(default=(), max_length=1000)
    published_only: bool = True
    # An explicit course sync list (Canvas ids or "sis_course_id:..." references) replaces the filters.
    sync_list: tuple[CourseReference, ...] = Field(default=(), max_length=MAX_SYNC_LIST_COURSES)


class SyncSchedule(BaseModel):
    """When a tenant's full syncs run: every N minutes, or daily at a local time in its time zone."""

    model_config = ConfigDict(frozen=True)

    every_minutes: int | None = Field(default=60, ge=15)
    daily_at: str | None = None
    timezone: str = "UTC"

    @field_validator("daily_at")
    @classmethod
    def _clock_time(cls, value: str | None) -> str | None:
        if value is not None and not DAILY_AT.fullmatch(value):
            raise ValueError(f"{value!r} is not a time of day: give HH:MM, 24-hour, e.g. 06:30 or 18:00")
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> SyncSchedule:
        if (self.every_minutes is None) == (self.daily_at is None):
            raise ValueError("give either every_minutes or daily_at")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {self.timezone!r}") from error
        return self

    def next_run(self, after: datetime) -> datetime:
        if self.every_minutes is not None:
            return after + timedelta(minutes=self.every_minutes)
        assert self.daily_at is not None
        hour, minute = (int(part) for part in self.daily_at.split(":"))
        local = after.astimezone(ZoneInfo(self.timezone))
        candidate = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if candidate <= local:
            candidate = (local + timedelta(days=1)).replace(hour=hour, minute=minute, second=0, microsecond=0)
        return candidate.astimezone(UTC)


class TenantSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    schedule: SyncSchedule = Field(default_factory=SyncSchedule)
    course_id_field: CourseIdField = CourseIdField.CANVAS_ID
    user_id_field: UserIdField = UserIdField.SIS_USER_ID
    # By Canvas role name (custom roles included), ahead of the base-type defaults above.
    role_overrides: dict[str, RosterRole] = Field(default_factory=dict)
    courses: CourseSelection = Field(default_factory=CourseSelection)
    # Hold a course's sync for approval when it would drop more than this share of its active
    # enrollments (and at least mass_drop_min_enrollments of them).
    mass_drop_threshold: float = Field(default=0.25, gt=0, le=1)
    mass_drop_min_enrollments: int = Field(default=5, ge=1)

    def roster_role(self, enrollment_type: str, role_name: str) -> RosterRole:
        if enrollment_type == "StudentViewEnrollment":
            return RosterRole.EXCLUDED  # the test student never syncs, whatever the overrides say
        if role_name in self.role_overrides:
            return self.role_overrides[role_name]
        return DEFAULT_ROLE_MAP.get(enrollment_type, RosterRole.EXCLUDED)

    @property
    def needs_emails(self) -> bool:
        # Enrollments embed users without email; only then is the extra users listing worth its requests.
        return self.user_id_field is UserIdField.EMAIL


class Tenant(BaseModel):
    model_config = ConfigDict(frozen=True)

    tenant_id: str
    name: str
    canvas_url: str | None = None  # None until the tenant's admin saves the Canvas settings
    client_id: str | None = None
    status: TenantStatus = TenantStatus.PENDING_AUTHORIZATION
    status_reason: str | None = None
    allow_insecure_canvas: bool = False
    settings: TenantSettings = Field(default_factory=TenantSettings)
    root_account_id: int | None = None
    root_account_uuid: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    authorized_at: datetime | None = None
    authorized_by: str | None = None  # the Canvas user who authorized, as "Name (id)"
    next_sync_at: datetime | None = None  # the schedule's next full sync (None: at the next tick)


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


# The roster as stored and exported: the contract of `rostersync roster export`
# (docs/architecture.md, "Contracts for scripts").
class RosterCourse(BaseModel):
    canvas_id: int
    sis_course_id: str | None
    name: str
    workflow_state: str


class OutOfScopeReason(StrEnum):
    """Why a stored course left what the tenant syncs (its roster stays, marked, out of the export)."""

    NOT_SELECTED = "not_selected"  # the selection (account, terms, published filter, sync list) misses it
    CONCLUDED = "concluded"  # its term or its own end date passed, or Canvas concluded it
    NOT_IN_CANVAS = "not_in_canvas"  # a listed course Canvas no longer has (deleted, or left the root)


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
    # Set when the user cannot be identified downstream; such users (and their enrollments) are not exported.
    sync_error: str | None = None


class RosterEnrollment(BaseModel):
    canvas_id: int
    user_id: int
    section_id: int | None
    type: str
    role: str
    role_id: int | None
    state: str
    active: bool
    roster_role: RosterRole = RosterRole.STUDENT
    dropped_reason: str | None = None
    dropped_at: datetime | None = None


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


class LiveEventRecord(BaseModel):
    """What became of one live event for one tenant (kept a week, for the page and `events recent`)."""

    tenant_id: str
    received_at: datetime = Field(default_factory=utc_now)
    event_name: str
    dedupe_key: str
    origin: str
    outcome: str  # applied, ignored, deferred, or tenant_not_connected
    reason: str
    course_ids: list[int] = []


class HoldStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # Canvas no longer proposed these drops before anyone decided


class HeldDrop(BaseModel):
    """One enrollment a held sync would drop, as the admin needs to judge it."""

    enrollment_id: int
    user_id: int
    name: str
    identifier: str | None  # the tenant's downstream user identifier (sis_user_id, email, ...)


class HeldItem(BaseModel):
    sk: str
    data: str
    content_hash: str


class HeldSync(BaseModel):
    """A course's drops held for approval (or rejected: kept out until Canvas proposes other drops)."""

    tenant_id: str
    course_id: int
    run_id: str
    status: HoldStatus = HoldStatus.PENDING
    fingerprint: str
    student_drops: int
    active_before: int
    puts: list[HeldItem]
    deletes: list[str]
    drops: list[HeldDrop] = []
    created_at: datetime = Field(default_factory=utc_now)
    decided_by: str | None = None
    decided_at: datetime | None = None


# -- grade passback ---------------------------------------------------------------------------------
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
