"""An admin's decision on a course whose sync was held for a mass drop."""

from __future__ import annotations

from rostersync.delivery.changes import roster_changes
from rostersync.models import HeldSync, HoldStatus, utc_now
from rostersync.services import Services
from rostersync.store.rosters import StoredItem
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


def decided_holds(services: Services, tenant_id: str, limit: int = 50) -> list[HeldSync]:
    """Holds already decided (approved, rejected, or withdrawn by Canvas), the latest first."""
    require_tenant(services, tenant_id)
    return services.table.list_hold_decisions(tenant_id, limit)


def approve_hold(services: Services, tenant_id: str, course_id: int, decided_by: str) -> HeldSync:
    """Apply the held drops as they were proposed; the next sync reconciles anything newer."""
    hold = _pending(services, tenant_id, course_id)
    puts = [StoredItem(item.sk, item.data, item.content_hash) for item in hold.puts]
    services.table.write_course(
        tenant_id, course_id, None, puts, hold.deletes, describe_changes=roster_changes
    )
    approved = _decided(hold, HoldStatus.APPROVED, decided_by)
    services.table.put_hold_decision(approved)
    services.table.delete_hold(tenant_id, course_id)
    return approved


def reject_hold(services: Services, tenant_id: str, course_id: int, decided_by: str) -> HeldSync:
    """Keep the roster as it is; the same drops are not proposed again, different ones are."""
    rejected = _decided(_pending(services, tenant_id, course_id), HoldStatus.REJECTED, decided_by)
    services.table.put_hold_decision(rejected)
    services.table.put_hold(rejected)
    return rejected


def _decided(hold: HeldSync, status: HoldStatus, decided_by: str) -> HeldSync:
    return hold.model_copy(update={"status": status, "decided_by": decided_by, "decided_at": utc_now()})
