"""Machine clients of the delivery API: which tenant a client id reads (pk CLIENT#<client id>)."""

from __future__ import annotations

from boto3.dynamodb.conditions import Key

from rostersync.models import ApiClient
from rostersync.store.dynamo import TableRecords
from rostersync.store.keys import CLIENT_SK, TENANTS_INDEX, client_pk, clients_index_pk


class ApiClientRecords(TableRecords):
    def put_api_client(self, client: ApiClient) -> None:
        self._table.put_item(
            Item={
                "pk": client_pk(client.client_id),
                "sk": CLIENT_SK,
                "gsi1pk": clients_index_pk(client.tenant_id),
                "gsi1sk": client.client_id,
                "tenant_id": client.tenant_id,
                "name": client.name,
            }
        )

    def api_client(self, client_id: str) -> ApiClient | None:
        """The client as stored now (read consistently: a removed client stops at its next request)."""
        item = self._table.get_item(
            Key={"pk": client_pk(client_id), "sk": CLIENT_SK}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return ApiClient(client_id=client_id, tenant_id=str(item["tenant_id"]), name=str(item["name"]))

    def list_api_clients(self, tenant_id: str) -> list[ApiClient]:
        items = self._query(
            IndexName=TENANTS_INDEX, KeyConditionExpression=Key("gsi1pk").eq(clients_index_pk(tenant_id))
        )
        return [
            ApiClient(client_id=str(item["gsi1sk"]), tenant_id=tenant_id, name=str(item["name"]))
            for item in items
        ]

    def delete_api_client(self, client_id: str) -> None:
        self._table.delete_item(Key={"pk": client_pk(client_id), "sk": CLIENT_SK})
