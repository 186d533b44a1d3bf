"""Models of Canvas Live Events after normalisation (facts: docs/architecture.md, "Canvas facts").

One model, `NormalizedEvent`, covers both delivery formats (Canvas and Caliper IMS 1.1). Ids are local
integers (global ids reduced with `id % 10**13`), timestamps are aware datetimes.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, computed_field

EventFormat = Literal["canvas", "caliper"]
ParseStatus = Literal["ok", "ignored", "invalid"]


class ObjectType(StrEnum):
    """What a roster-relevant event is about."""

    COURSE = "course"
    SECTION = "section"
    ENROLLMENT = "enrollment"
    ENROLLMENT_STATE = "enrollment_state"
    USER = "user"
    SIS_BATCH = "sis_batch"
    ACCOUNT = "account"
    USER_ACCOUNT_ASSOCIATION = "user_account_association"


class EventOrigin(StrEnum):
    """How an event reached us, which decides what it may cost (README: "What a live event can cost")."""

    SIGNED = "signed"  # a JWT verified against Canvas's JWKS (HTTPS delivery with "Sign Payload")
    # Put on the queue by Canvas Data Services: the queue policy lets only Instructure's AWS account send.
    DATA_SERVICES = "data_services"
    UNSIGNED = "unsigned"  # plain JSON posted to the public HTTPS intake: anyone can send it

    @property
    def verified(self) -> bool:
        return self is not EventOrigin.UNSIGNED


class NormalizedEvent(BaseModel):
    """A live event reduced to what roster sync needs; fields the event does not carry are None."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: EventFormat
    event_name: str  # the Canvas name, also for Caliper events (e.g. "enrollment_created")
    event_time: AwareDatetime
    raw_event_id: str | None = None  # metadata.event_id (Canvas, when present) or data[0].id (Caliper)

    # Tenant routing: root_account_uuid is stable; root_account_id is local (normalised).
    root_account_uuid: str | None = None
    root_account_id: int | None = None
    root_account_lti_guid: str | None = None
    hostname: str | None = None

    # Who and where (request context); hints only, never the object's own ids.
    actor_user_id: int | None = None
    context_type: str | None = None
    context_id: int | None = None
    job_tag: str | None = None  # system-generated events (SIS import, enrollment-state recalculation ...)

    # The object. None for ignored events.
    object_type: ObjectType | None = None
    object_id: int | None = None  # the object's own id (course_id for a course, section_id for a section ...)
    course_id: int | None = None
    section_id: int | None = None
    user_id: int | None = None
    enrollment_id: int | None = None
    account_id: int | None = None
    sis_batch_id: int | None = None
    nonxlist_course_id: int | None = None  # sections: the original course when cross-listed
    cross_listed: bool | None = None  # sections: nonxlist_course_id is set and differs from course_id
    associated_user_id: int | None = None  # observer enrollments: the observed user
    parent_account_id: int | None = None

    name: str | None = None  # course, section, user or account name
    sis_id: str | None = None  # section sis_source_id, user user_sis_id
    login_id: str | None = None  # user_login
    enrollment_type: str | None = None  # StudentEnrollment, TeacherEnrollment ...
    workflow_state: str | None = None
    state: str | None = None  # enrollment_state events: pending_invited, active, completed, inactive ...
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def dedupe_key(self) -> str:
        """A stable key for duplicate deliveries (standard SQS queues deliver at least once)."""
        if self.raw_event_id:
            return f"{self.format}:{self.raw_event_id}"
        updated = self.updated_at.isoformat() if self.updated_at else "-"
        object_id = "-" if self.object_id is None else str(self.object_id)
        return f"{self.format}:{self.event_name}:{object_id}:{self.event_time.isoformat()}:{updated}"


class ParsedEvent(BaseModel):
    """The outcome of parsing one raw live event: never an exception."""

    model_config = ConfigDict(frozen=True)

    status: ParseStatus
    reason: str | None = None  # why ignored or invalid (and notes such as an unverified signature)
    event: NormalizedEvent | None = None  # set when ok; also set for ignored events whose envelope is usable
    verified: bool | None = None  # signed (JWT) input: True after signature check, False when not checked
    warnings: tuple[str, ...] = ()  # tolerated quirks, e.g. an unparseable updated_at that was dropped

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class TenantEvent(BaseModel):
    """One event for one of the tenants it routes to: the unit that is deduplicated and applied."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    origin: EventOrigin
    event: NormalizedEvent

    @computed_field  # type: ignore[prop-decorator]
    @property
    def dedupe_key(self) -> str:
        """Per tenant, and unforgeable across origins: a verified event is known by its own id; an unsigned
        one by its whole content, so a forged event sharing a real one's id suppresses nothing."""
        if self.origin.verified:
            return f"{self.tenant_id}:verified:{self.event.dedupe_key}"
        content = hashlib.sha256(self.event.model_dump_json().encode()).hexdigest()
        return f"{self.tenant_id}:unsigned:{content}"
