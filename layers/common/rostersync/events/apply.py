"""Applying a live event: find its tenant, then re-read what it points at from Canvas (events are hints,
the REST API is the truth). A re-read course is diffed and written like any sync, so duplicated,
lost or reordered events all end in Canvas's current state; a later full sync repairs what was missed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

from rostersync.connection import canvas_client_for, canvas_slot, read_account_course
from rostersync.events.models import NormalizedEvent, ObjectType
from rostersync.models import CourseSyncMessage, SyncTrigger, Tenant, TenantStatus
from rostersync.services import Services
from rostersync.sync.course import sync_course
from rostersync.sync.planner import is_selected, request_sync

logger = Logger(child=True)

# sis_batch workflow states after which Canvas's data changed in bulk: worth a full sync.
FINISHED_SIS_IMPORT_STATES = frozenset({"imported", "imported_with_messages", "partially_imported"})


class EventOutcome(StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"
    UNKNOWN_TENANT = "unknown_tenant"


@dataclass(frozen=True)
class EventResult:
    outcome: EventOutcome
    reason: str = ""
    tenant_ids: list[str] = field(default_factory=list)
    course_ids: list[int] = field(default_factory=list)


def route_to_tenants(tenants: list[Tenant], event: NormalizedEvent) -> list[Tenant]:
    """Every tenant connected to the event's Canvas: by root account uuid (learned at authorization),
    else by host name. Usually one; a staging and a production tenant of one Canvas both get it."""
    if event.root_account_uuid:
        matched = [tenant for tenant in tenants if tenant.root_account_uuid == event.root_account_uuid]
        if matched:
            return matched
    if event.hostname:
        host = event.hostname.lower()
        return [tenant for tenant in tenants if urlsplit(tenant.canvas_url).netloc.lower() == host]
    return []


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


def apply_live_event(services: Services, event: NormalizedEvent) -> EventResult:
    tenants = [
        t for t in route_to_tenants(services.table.list_tenants(), event) if t.status is TenantStatus.ACTIVE
    ]
    if not tenants:
        logger.warning(
            "live event for no connected tenant dropped",
            extra={
                "event_name": event.event_name,
                "root_account_uuid": event.root_account_uuid,
                "host": event.hostname,
            },
        )
        return EventResult(EventOutcome.UNKNOWN_TENANT, "no connected tenant has this root account or host")
    tenant_ids = [tenant.tenant_id for tenant in tenants]
    if event.object_type is ObjectType.SIS_BATCH:
        if (event.workflow_state or "") not in FINISHED_SIS_IMPORT_STATES:
            return EventResult(EventOutcome.IGNORED, "SIS import not finished", tenant_ids)
        for tenant in tenants:
            request_sync(services, tenant.tenant_id, SyncTrigger.LIVE_EVENT)
        return EventResult(EventOutcome.APPLIED, "SIS import finished: full sync requested", tenant_ids)
    run_id = "live-" + hashlib.sha256(event.dedupe_key.encode()).hexdigest()[:16]
    synced: set[int] = set()
    for tenant in tenants:
        courses = affected_courses(event)
        user_id = event.user_id or event.object_id
        if event.object_type is ObjectType.USER and user_id is not None:
            courses = services.table.courses_of_user(tenant.tenant_id, user_id)
        synced.update(
            course_id for course_id in courses if resync_course(services, tenant, course_id, run_id)
        )
    if not synced:
        return EventResult(EventOutcome.IGNORED, "no synced course is affected", tenant_ids)
    return EventResult(EventOutcome.APPLIED, "courses re-read from Canvas", tenant_ids, sorted(synced))


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
