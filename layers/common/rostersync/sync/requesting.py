"""Asking for syncs: the schedule asks for every connected tenant, an admin or a live event for one tenant
or some courses; the planner (sync/planner.py) takes the queued requests up.

Nothing here speaks to Canvas, so the scheduler, which only asks, does not load the HTTP client at its
cold start."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from rostersync.models import SyncRequest, SyncTrigger, TenantStatus
from rostersync.services import Services


def new_run_id() -> str:
    # Sorts by start time, so the newest runs come first in a reverse query.
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


class SyncCooldownError(Exception):
    def __init__(self, scope: str, retry_at: datetime) -> None:
        super().__init__(
            f"a sync of {scope} was asked for recently; the next is allowed at {retry_at.isoformat()}"
        )
        self.scope = scope
        self.retry_at = retry_at


def request_sync(
    services: Services,
    tenant_id: str,
    trigger: SyncTrigger,
    course_ids: tuple[int, ...] = (),
    *,
    enforce_cooldown: bool = False,
) -> SyncRequest:
    """Queue a sync of the tenant (or of some courses). "Sync now" waits out a cooldown per scope."""
    if enforce_cooldown:
        cooldown = services.settings.manual_sync_cooldown_seconds
        for scope in [f"course {course_id}" for course_id in course_ids] or ["the tenant"]:
            retry_at = services.table.claim_cooldown(tenant_id, scope, cooldown)
            if retry_at is not None:
                raise SyncCooldownError(scope, retry_at)
    request = SyncRequest(tenant_id=tenant_id, run_id=new_run_id(), trigger=trigger, course_ids=course_ids)
    services.queues.send_sync_request(request)
    return request


def request_scheduled_syncs(services: Services, now: datetime) -> list[SyncRequest]:
    """On each tick of the stack's schedule: a full sync of every connected tenant whose own time came."""
    requests = []
    for tenant in services.table.list_tenants():
        if tenant.status is not TenantStatus.ACTIVE:
            continue
        if tenant.next_sync_at is not None and tenant.next_sync_at > now:
            continue
        requests.append(request_sync(services, tenant.tenant_id, SyncTrigger.SCHEDULE))
        services.table.set_next_sync(tenant.tenant_id, tenant.settings.schedule.next_run(now))
    return requests
