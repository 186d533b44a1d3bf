"""What a signed-in tenant admin sees and may do; the tenant always comes from the admin's token."""

from __future__ import annotations

from typing import Any

from rostersync.canvas.scopes import required_scopes
from rostersync.models import SyncTrigger
from rostersync.services import Services
from rostersync.sync.holds import approve_hold, pending_holds, reject_hold
from rostersync.sync.planner import request_sync
from rostersync.sync.reports import run_summary
from rostersync.tenants import require_tenant


def tenant_overview(services: Services, tenant_id: str, callback_url: str) -> dict[str, Any]:
    """The settings page's data: never the client secret or a token (they live in Secrets Manager only)."""
    tenant = require_tenant(services, tenant_id)
    return {
        **tenant.model_dump(mode="json", exclude={"allow_insecure_canvas"}),
        "redirect_uri": callback_url,
        "developer_key_scopes": required_scopes(),
    }


def recent_runs(services: Services, tenant_id: str, limit: int = 20) -> list[dict[str, Any]]:
    require_tenant(services, tenant_id)
    summaries = (
        run_summary(services, tenant_id, run.run_id) for run in services.table.list_runs(tenant_id, limit)
    )
    return [summary.model_dump(mode="json") for summary in summaries if summary is not None]


def sync_now(services: Services, tenant_id: str, course_ids: tuple[int, ...] = ()) -> str:
    require_tenant(services, tenant_id)
    return request_sync(services, tenant_id, SyncTrigger.MANUAL, course_ids, enforce_cooldown=True).run_id


def held_syncs(services: Services, tenant_id: str) -> list[dict[str, Any]]:
    return [
        hold.model_dump(mode="json", exclude={"puts", "deletes"}) | {"would_drop": len(hold.puts)}
        for hold in pending_holds(services, tenant_id)
    ]


def decide_hold(services: Services, tenant_id: str, course_id: int, *, approve: bool) -> dict[str, Any]:
    hold = (approve_hold if approve else reject_hold)(services, tenant_id, course_id)
    return {"course_id": hold.course_id, "decision": "approved" if approve else "rejected"}
