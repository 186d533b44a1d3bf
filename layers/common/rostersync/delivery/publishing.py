"""Every feed change also goes to the roster event bus, one event each: detail-type = the change type,
detail = the change as /v1/changes shows it, with its tenant and its id (its cursor) for consumers to
drop repeats, since publishing is at least once (a stream batch may be delivered again)."""

from __future__ import annotations

from typing import Any

from rostersync.delivery.reading import as_change
from rostersync.models import Change
from rostersync.store.event_bus import RosterEventBus
from rostersync.store.feed import FeedEntry
from rostersync.store.table import RosterTable


def change_event(tenant_id: str, change: Change) -> tuple[str, dict[str, Any]]:
    detail = {"id": change.cursor, "tenant_id": tenant_id, **change.model_dump(mode="json")}
    return change.type.value, detail


def publish_feed_entry(table: RosterTable, bus: RosterEventBus, tenant_id: str, entry: FeedEntry) -> int:
    """Publish one commit's changes, in order; return how many."""
    changes = table.entry_changes(tenant_id, entry, 0, entry.count)
    bus.publish([change_event(tenant_id, as_change(change)) for change in changes])
    return len(changes)
