"""EventBridge: the roster event bus consumers subscribe to (rules on detail-type, the change type)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import boto3

PUT_EVENTS_LIMIT = 10
ROSTER_EVENT_SOURCE = "rostersync.rosters"


class EventPublishError(Exception):
    """Some events were not accepted: the batch is retried (consumers dedupe by the detail's id)."""


class RosterEventBus:
    def __init__(self, bus_name: str, client: Any = None) -> None:
        self._bus_name = bus_name
        self._client = client or boto3.client("events")

    def publish(self, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """(detail-type, detail) pairs, in order, ten to a request."""
        for start in range(0, len(events), PUT_EVENTS_LIMIT):
            entries = [
                {
                    "Source": ROSTER_EVENT_SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": self._bus_name,
                }
                for detail_type, detail in events[start : start + PUT_EVENTS_LIMIT]
            ]
            response = self._client.put_events(Entries=entries)
            if response.get("FailedEntryCount"):
                codes = sorted(
                    {str(entry.get("ErrorCode")) for entry in response["Entries"] if "ErrorCode" in entry}
                )
                raise EventPublishError(
                    f"{response['FailedEntryCount']} events not accepted: {', '.join(codes)}"
                )
