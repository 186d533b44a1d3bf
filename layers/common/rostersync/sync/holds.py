"""An admin's decision on a course whose sync was held for a mass drop."""

from __future__ import annotations

from rostersync.models import HeldSync, HoldStatus
from rostersync.services import Services
from rostersync.store.table import StoredItem
from rostersync.tenants import TenantError, require_tenant


def pending_holds(services: Services, tenant_id: str) -> list[HeldSync]:
    require_tenant(services, tenant_id)
    return [hold for hold in services.table.list_holds(tenant_id) if hold.status is HoldStatus.PENDING]


def _pending(services: Services, tenant_id: str, course_id: int) -> HeldSync:
    require_tenant(services, tenant_id)
    hold = services.table.get_hold(tenant_id, course_id)
    if hold is None or hold.status is not HoldStatus.PENDING:
        raise TenantError(f"course {course_id} has no sync waiting for approval")
    return hold


def approve_hold(services: Services, tenant_id: str, course_id: int) -> HeldSync:
    """Apply the held drops as they were proposed; the next sync reconciles anything newer."""
    hold = _pending(services, tenant_id, course_id)
    puts = [StoredItem(item.sk, item.data, item.content_hash) for item in hold.puts]
    services.table.write_course(tenant_id, course_id, None, puts, hold.deletes)
    services.table.delete_hold(tenant_id, course_id)
    return hold


def reject_hold(services: Services, tenant_id: str, course_id: int) -> HeldSync:
    """Keep the roster as it is; the same drops are not proposed again, different ones are."""
    rejected = _pending(services, tenant_id, course_id).model_copy(update={"status": HoldStatus.REJECTED})
    services.table.put_hold(rejected)
    return rejected
