"""Applying a live event: find its tenants, then re-read what it points at from Canvas (events are hints,
the REST API is the truth). A re-read course is diffed and written like any sync, so duplicated,
lost or reordered events all end in Canvas's current state; a later full sync repairs what was missed.

What an event may cost depends on its origin (README: "What a live event can cost"): an unsigned one only
course re-reads, within a per-tenant budget; a full sync needs a verified one, and its cooldown.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urlsplit

from rostersync.connection import canvas_client_for, canvas_slot, read_account_course
from rostersync.events.models import NormalizedEvent, ObjectType, TenantEvent
from rostersync.models import CourseSyncMessage, LiveEventRecord, SyncTrigger, Tenant
from rostersync.services import Services
from rostersync.sync.course import sync_course
from rostersync.sync.planner import is_selected
from rostersync.sync.requesting import request_sync

# sis_batch workflow states after which Canvas's data changed in bulk: worth a full sync.
FINISHED_SIS_IMPORT_STATES = frozenset({"imported", "imported_with_messages", "partially_imported"})


class EventOutcome(StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"
    # Over the tenant's budget or inside its full-sync cooldown: not done now; the next full sync repairs.
    DEFERRED = "deferred"
    TENANT_NOT_CONNECTED = "tenant_not_connected"  # it needs authorizing (again) before events apply


# Budget and cooldown scopes (stored per tenant).
UNSIGNED_REREAD_BUDGET = "unsigned live-event re-reads"
LIVE_EVENT_FULL_SYNC = "full sync asked by a live event"
BUDGET_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class EventResult:
    outcome: EventOutcome
    reason: str = ""
    course_ids: list[int] = field(default_factory=list)
    deferred_course_ids: list[int] = field(default_factory=list)


def route_to_tenants(tenants: list[Tenant], event: NormalizedEvent) -> list[Tenant]:
    """Every tenant connected to the event's Canvas: by root account uuid (learned at authorization),
    else by host name. Usually one; a staging and a production tenant of one Canvas both get it."""
    if event.root_account_uuid:
        matched = [tenant for tenant in tenants if tenant.root_account_uuid == event.root_account_uuid]
        if matched:
            return matched
    if event.hostname:
        host = event.hostname.lower()
        return [
            tenant
            for tenant in tenants
            if tenant.canvas_url is not None and urlsplit(tenant.canvas_url).netloc.lower() == host
        ]
    return []


def routed_tenants(services: Services, event: NormalizedEvent) -> list[Tenant]:
    """The tenants the event routes to, connected or not; none when it is for no tenant of ours."""
    return route_to_tenants(services.table.list_tenants(), event)


def record_outcome(services: Services, tenant_event: TenantEvent, result: EventResult) -> None:
    """Keep what became of the event for the tenant's admin (the page) and operator (`events recent`)."""
    services.table.put_live_event_record(
        LiveEventRecord(
            tenant_id=tenant_event.tenant_id,
            event_name=tenant_event.event.event_name,
            dedupe_key=tenant_event.event.dedupe_key,
            origin=tenant_event.origin.value,
            outcome=result.outcome.value,
            reason=result.reason,
            course_ids=result.course_ids,
        )
    )


def not_connected(tenant: Tenant) -> EventResult:
    return EventResult(
        EventOutcome.TENANT_NOT_CONNECTED,
        f"the tenant is {tenant.status.value}: live events apply again once it is authorized",
    )


def affected_courses(event: NormalizedEvent) -> list[int]:
    if event.object_type in (ObjectType.ENROLLMENT, ObjectType.ENROLLMENT_STATE):
        candidates = [event.course_id]
    elif event.object_type is ObjectType.SECTION:
        # A cross-listed section leaves one course and joins another: both rosters change.
        candidates = [event.course_id, event.nonxlist_course_id]
    elif event.object_type is ObjectType.COURSE:
        candidates = [event.course_id or event.object_id]
    else:
        candidates = []
    return list(dict.fromkeys(course_id for course_id in candidates if course_id is not None))


def apply_live_event(services: Services, tenant: Tenant, tenant_event: TenantEvent) -> EventResult:
    """Apply one event to one of its tenants (`tenant_event` names the same tenant)."""
    event = tenant_event.event
    if event.object_type is ObjectType.SIS_BATCH:
        return _request_full_sync(services, tenant, tenant_event)
    courses = affected_courses(event)
    user_id = event.user_id or event.object_id
    if event.object_type is ObjectType.USER and user_id is not None:
        courses = services.table.courses_of_user(tenant.tenant_id, user_id)
    run_id = "live-" + hashlib.sha256(tenant_event.dedupe_key.encode()).hexdigest()[:16]
    synced: list[int] = []
    deferred: list[int] = []
    for course_id in courses:
        if not tenant_event.origin.verified and not services.table.spend_budget(
            tenant.tenant_id,
            UNSIGNED_REREAD_BUDGET,
            services.settings.unsigned_live_event_rereads_per_minute,
            BUDGET_WINDOW_SECONDS,
        ):
            deferred.append(course_id)
        elif resync_course(services, tenant, course_id, run_id):
            synced.append(course_id)
    if deferred:
        return EventResult(
            EventOutcome.DEFERRED,
            "the tenant's budget of re-reads for unsigned events is spent; the next full sync repairs",
            sorted(synced),
            deferred,
        )
    if not synced:
        return EventResult(EventOutcome.IGNORED, "no synced course is affected")
    return EventResult(EventOutcome.APPLIED, "courses re-read from Canvas", sorted(synced))


def _request_full_sync(services: Services, tenant: Tenant, tenant_event: TenantEvent) -> EventResult:
    if (tenant_event.event.workflow_state or "") not in FINISHED_SIS_IMPORT_STATES:
        return EventResult(EventOutcome.IGNORED, "SIS import not finished")
    if not tenant_event.origin.verified:
        reason = "an unsigned event cannot start a full sync (verified ones or the schedule do)"
        return EventResult(EventOutcome.IGNORED, reason)
    cooldown = services.settings.live_event_full_sync_cooldown_seconds
    retry_at = services.table.claim_cooldown(tenant.tenant_id, LIVE_EVENT_FULL_SYNC, cooldown)
    if retry_at is not None:
        return EventResult(
            EventOutcome.DEFERRED,
            f"a live event asked for a full sync recently; the next may start at {retry_at.isoformat()}",
        )
    request_sync(services, tenant.tenant_id, SyncTrigger.LIVE_EVENT)
    return EventResult(EventOutcome.APPLIED, "SIS import finished: full sync requested")


def resync_course(services: Services, tenant: Tenant, course_id: int, run_id: str) -> bool:
    """Re-read one course from Canvas and write what changed; False when it is not one we sync."""
    client = canvas_client_for(services, tenant)
    with canvas_slot(services, tenant.tenant_id):
        course = read_account_course(client, tenant, course_id)
    # Deleted, or not in this account: the next full sync settles it.
    if course is None or not is_selected(tenant, course, datetime.now(UTC)):
        return False
    sync_course(
        services, CourseSyncMessage(tenant_id=tenant.tenant_id, run_id=run_id, course=course), attempt=1
    )
    return True
