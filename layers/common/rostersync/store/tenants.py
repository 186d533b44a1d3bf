"""Tenant rows: a tenant's Canvas settings, status and sync settings (pk T#<t>, sk TENANT)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from rostersync.models import Tenant, TenantSettings, TenantStatus
from rostersync.store.dynamo import TableRecords, is_conditional_failure, scan_all, strip_keys, without_none
from rostersync.store.keys import CLIENT_PREFIX, TENANT_SK, TENANTS_INDEX, TENANTS_INDEX_PK, tenant_pk


class TenantExistsError(Exception):
    pass


def _tenant_item(tenant: Tenant) -> dict[str, Any]:
    # Settings hold floats, which DynamoDB's resource API refuses: they are stored as JSON text.
    return {
        **without_none(tenant.model_dump(mode="json", exclude={"settings"})),
        "settings": tenant.settings.model_dump_json(),
    }


def tenant_from_item(item: dict[str, Any]) -> Tenant:
    values = strip_keys(item)
    values["settings"] = json.loads(values.get("settings") or "{}")
    return Tenant.model_validate(values)


def _tenant_key(tenant_id: str) -> dict[str, str]:
    return {"pk": tenant_pk(tenant_id), "sk": TENANT_SK}


class TenantRecords(TableRecords):
    def create_tenant(self, tenant: Tenant) -> None:
        item = {
            **_tenant_key(tenant.tenant_id),
            "gsi1pk": TENANTS_INDEX_PK,
            "gsi1sk": tenant.tenant_id,
            **_tenant_item(tenant),
        }
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if is_conditional_failure(error):
                raise TenantExistsError(tenant.tenant_id) from error
            raise

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        item = self._table.get_item(Key=_tenant_key(tenant_id), ConsistentRead=True).get("Item")
        return tenant_from_item(item) if item else None

    def list_tenants(self) -> list[Tenant]:
        items = self._query(
            IndexName=TENANTS_INDEX, KeyConditionExpression=Key("gsi1pk").eq(TENANTS_INDEX_PK)
        )
        return [tenant_from_item(item) for item in items]

    def update_tenant_status(self, tenant: Tenant) -> None:
        """Write the Canvas settings, status, reason and Canvas account facts of an existing tenant."""
        values = {
            "canvas_url": tenant.canvas_url,
            "client_id": tenant.client_id,
            "status": tenant.status.value,
            "status_reason": tenant.status_reason,
            "root_account_id": tenant.root_account_id,
            "root_account_uuid": tenant.root_account_uuid,
            "authorized_at": tenant.authorized_at.isoformat() if tenant.authorized_at else None,
            "authorized_by": tenant.authorized_by,
        }
        sets = [f"#{name} = :{name}" for name, value in values.items() if value is not None]
        removes = [f"#{name}" for name, value in values.items() if value is None]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        self._table.update_item(
            Key=_tenant_key(tenant.tenant_id),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={f"#{name}": name for name in values},
            ExpressionAttributeValues={
                f":{name}": value for name, value in values.items() if value is not None
            },
        )

    def delete_tenant(self, tenant_id: str) -> int:
        """Delete every item of the tenant (rare, so one filtered scan); return the count."""
        own = (
            Attr("pk").eq(tenant_pk(tenant_id))
            | Attr("pk").begins_with(f"{tenant_pk(tenant_id)}#")
            | (Attr("pk").begins_with(CLIENT_PREFIX) & Attr("tenant_id").eq(tenant_id))
        )
        keys = [
            {"pk": item["pk"], "sk": item["sk"]}
            for item in scan_all(self._table, FilterExpression=own, ProjectionExpression="pk, sk")
        ]
        with self._table.batch_writer() as batch:
            for key in keys:
                batch.delete_item(Key=key)
        return len(keys)

    def set_next_sync(self, tenant_id: str, when: datetime) -> None:
        self._table.update_item(
            Key=_tenant_key(tenant_id),
            UpdateExpression="SET next_sync_at = :when",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":when": when.isoformat()},
        )

    def update_tenant_settings(
        self, tenant_id: str, settings: TenantSettings, next_sync_at: datetime | None = None
    ) -> None:
        """Store new settings; with `next_sync_at` (a changed schedule), its next full sync too."""
        values: dict[str, str] = {":settings": settings.model_dump_json()}
        expression = "SET settings = :settings"
        if next_sync_at is not None:
            values[":when"] = next_sync_at.isoformat()
            expression += ", next_sync_at = :when"
        self._table.update_item(
            Key=_tenant_key(tenant_id),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=values,
        )

    def mark_needs_reauthorization(self, tenant_id: str, reason: str) -> None:
        self._table.update_item(
            Key=_tenant_key(tenant_id),
            UpdateExpression="SET #status = :status, status_reason = :reason",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":status": TenantStatus.NEEDS_REAUTHORIZATION.value,
                ":reason": reason,
            },
        )
