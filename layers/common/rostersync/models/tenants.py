"""A tenant and its settings: identifiers, roles, course selection and sync schedule."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from rostersync.models.base import CanvasId, utc_now

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
