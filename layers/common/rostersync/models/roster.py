"""The stored roster, the drops held for approval, and what became of live events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from rostersync.models.base import utc_now
from rostersync.models.tenants import RosterRole


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
