"""Mass drops held for an admin's approval (pk T#<t>#HOLD): each course's current hold under
COURSE#<course>, and the decided ones under DECIDED#<time>#<course>."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key

from rostersync.models import HeldSync
from rostersync.store.dynamo import TableRecords
from rostersync.store.keys import COURSE_PREFIX, DECIDED_PREFIX, course_sk, decided_sk, hold_pk


def hold_from_item(item: dict[str, Any]) -> HeldSync:
    return HeldSync.model_validate_json(item["hold"])


class HoldRecords(TableRecords):
    def put_hold(self, hold: HeldSync) -> None:
        # One attribute of JSON: a held course of a few thousand drops stays well under DynamoDB's 400 KB.
        self._table.put_item(
            Item={
                "pk": hold_pk(hold.tenant_id),
                "sk": course_sk(hold.course_id),
                "hold": hold.model_dump_json(),
            }
        )

    def get_hold(self, tenant_id: str, course_id: int) -> HeldSync | None:
        key = {"pk": hold_pk(tenant_id), "sk": course_sk(course_id)}
        item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        return hold_from_item(item) if item else None

    def list_holds(self, tenant_id: str) -> list[HeldSync]:
        """Each course's current hold (pending, or rejected and remembered)."""
        items = self._query(
            KeyConditionExpression=Key("pk").eq(hold_pk(tenant_id)) & Key("sk").begins_with(COURSE_PREFIX)
        )
        return [hold_from_item(item) for item in items]

    def delete_hold(self, tenant_id: str, course_id: int) -> None:
        self._table.delete_item(Key={"pk": hold_pk(tenant_id), "sk": course_sk(course_id)})

    def put_hold_decision(self, hold: HeldSync) -> None:
        """Keep a decided hold (who, when, which drops) beside the current holds, as their history."""
        decided_at = (hold.decided_at or hold.created_at).isoformat()
        record = hold.model_copy(update={"puts": [], "deletes": []})  # the drops list says what was held
        self._table.put_item(
            Item={
                "pk": hold_pk(hold.tenant_id),
                "sk": decided_sk(decided_at, hold.course_id),
                "hold": record.model_dump_json(),
            }
        )

    def list_hold_decisions(self, tenant_id: str, limit: int = 50) -> list[HeldSync]:
        """The latest decided holds first."""
        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(hold_pk(tenant_id)) & Key("sk").begins_with(DECIDED_PREFIX),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [HeldSync.model_validate_json(item["hold"]) for item in response["Items"]]
