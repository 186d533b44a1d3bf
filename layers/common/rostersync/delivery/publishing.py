"""Every feed change also goes to the roster event bus, one event each: detail-type = the change type,
detail = the change as /v1/changes shows it, with its tenant and its id (its cursor) for consumers to
drop repeats, since publishing is at least once (a stream batch may be delivered again)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rostersync.delivery.reading import as_change
from rostersync.models import Change, ChangeType, ExportedEnrollment, RosterCourse, RosterSection
from rostersync.store.event_bus import ROSTER_EVENT_SOURCE, RosterEventBus
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


def _data_model(change_type: ChangeType) -> type[BaseModel]:
    if change_type is ChangeType.COURSE_SYNCED:
        return RosterCourse
    return RosterSection if change_type.value.startswith("section.") else ExportedEnrollment


def event_schema(change_type: ChangeType) -> dict[str, Any]:
    """The JSON Schema of the bus's events of one detail-type (events/schemas/<type>.json: the contract
    for consumers)."""
    detail_fields = {
        "id": {"type": "string", "description": "the change's stable id (its feed cursor): drop repeats"},
        "tenant_id": {"type": "string"},
        "cursor": {"type": "string", "description": "/v1/changes?after= this cursor continues from here"},
        "type": {"const": change_type.value},
        "course_id": {"type": "integer"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "data": {
            **_data_model(change_type).model_json_schema(mode="serialization"),
            "additionalProperties": False,
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"rostersync {change_type.value}",
        "type": "object",
        "required": ["source", "detail-type", "detail"],
        "properties": {
            "source": {"const": ROSTER_EVENT_SOURCE},
            "detail-type": {"const": change_type.value},
            "detail": {
                "type": "object",
                "required": sorted(detail_fields),
                "properties": detail_fields,
                "additionalProperties": False,
            },
        },
    }
