"""What became of each live event (pk T#<t>#EVENTS, sk <received time>#<key digest>), kept a week."""

from __future__ import annotations

import hashlib
import time

from boto3.dynamodb.conditions import Key

from rostersync.models import LiveEventRecord
from rostersync.store.dynamo import TableRecords
from rostersync.store.keys import live_event_sk, live_events_pk

LIVE_EVENT_RECORD_TTL_SECONDS = 7 * 24 * 3600


class LiveEventRecords(TableRecords):
    def put_live_event_record(self, record: LiveEventRecord) -> None:
        digest = hashlib.sha256(record.dedupe_key.encode()).hexdigest()[:12]
        self._table.put_item(
            Item={
                "pk": live_events_pk(record.tenant_id),
                "sk": live_event_sk(record.received_at.isoformat(), digest),
                "record": record.model_dump_json(),
                "expires_at": int(time.time()) + LIVE_EVENT_RECORD_TTL_SECONDS,
            }
        )

    def recent_live_events(self, tenant_id: str, limit: int = 20) -> list[LiveEventRecord]:
        """The tenant's latest live events first, with what became of each."""
        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(live_events_pk(tenant_id)),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [LiveEventRecord.model_validate_json(item["record"]) for item in response["Items"]]
