"""What the delivery API (/v1) answers and what the feed publishes: the contract of the read API for the
assessment platform (docs/architecture.md, "Roster delivery")."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from rostersync.models.roster import RosterSection


class ChangeType(StrEnum):
    ENROLLMENT_ADDED = "enrollment.added"
    ENROLLMENT_UPDATED = "enrollment.updated"
    ENROLLMENT_DROPPED = "enrollment.dropped"
    SECTION_ADDED = "section.added"
    SECTION_UPDATED = "section.updated"
    SECTION_REMOVED = "section.removed"
    COURSE_SYNCED = "course.synced"


class CourseListing(BaseModel):
    canvas_id: int
    sis_course_id: str | None
    name: str
    workflow_state: str
    synced_at: str | None  # when its roster last changed


class CoursePage(BaseModel):
    items: list[CourseListing]
    next: str | None


class ExportedUser(BaseModel):
    canvas_id: int
    name: str
    sortable_name: str | None
    sis_user_id: str | None
    login_id: str | None
    email: str | None


class ExportedEnrollment(BaseModel):
    canvas_id: int
    user_id: int
    section_id: int | None
    type: str
    role: str
    role_id: int | None
    state: str
    active: bool
    dropped_at: datetime | None
    dropped_reason: str | None


class ExportedCourse(BaseModel):
    """One course of `rostersync roster export --format json`."""

    canvas_id: int
    sis_course_id: str | None
    name: str
    workflow_state: str
    sections: list[RosterSection]
    users: list[ExportedUser]
    enrollments: list[ExportedEnrollment]


class UserEnrollment(ExportedEnrollment):
    course_id: int


class UserEnrollments(BaseModel):
    items: list[UserEnrollment]


class Change(BaseModel):
    cursor: str  # also the change's stable id
    type: ChangeType
    course_id: int
    occurred_at: str
    data: dict[str, Any]


class ChangePage(BaseModel):
    items: list[Change]
    next: str | None


class ApiClient(BaseModel):
    """A machine client of the delivery API: its tenant comes from here, never from a request."""

    client_id: str
    tenant_id: str
    name: str
