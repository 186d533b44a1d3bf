"""Who may act for which tenant: admin memberships and operators, keyed by the token's subject.

Every admin request reads them (store/keys.py: ADMIN#<subject> items), so removing an admin or an
operator takes effect at their next request, not when their token expires."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from pydantic import BaseModel

from rostersync.store.dynamo import TableRecords, scan_all
from rostersync.store.keys import (
    ADMIN_TENANT_PREFIX,
    OPERATOR_SK,
    PROFILE_SK,
    admin_pk,
    admin_tenant_sk,
    tenant_admin_sk,
    tenant_pk,
)


class Membership(BaseModel):
    tenant_id: str
    subject: str
    email: str
    added_at: datetime
    added_by: str


class SubjectRecords(BaseModel):
    """What rostersync knows of one token subject, read in one query."""

    memberships: list[Membership]
    operator: bool
    signed_out_at: int | None


class AdminRecords(TableRecords):
    def subject_records(self, subject: str) -> SubjectRecords:
        memberships: list[Membership] = []
        operator = False
        signed_out_at: int | None = None
        for item in self._query(KeyConditionExpression=Key("pk").eq(admin_pk(subject)), ConsistentRead=True):
            if str(item["sk"]).startswith(ADMIN_TENANT_PREFIX):
                memberships.append(Membership.model_validate(item))
            elif item["sk"] == OPERATOR_SK:
                operator = True
            elif item["sk"] == PROFILE_SK and item.get("signed_out_at") is not None:
                signed_out_at = int(item["signed_out_at"])
        return SubjectRecords(memberships=memberships, operator=operator, signed_out_at=signed_out_at)

    def put_membership(self, membership: Membership) -> None:
        """Two items in one transaction: under the subject (checked per request) and under the tenant
        (`admin list`). The resource's client serializes the items itself."""
        item = membership.model_dump(mode="json")
        keys = _membership_keys(membership.tenant_id, membership.subject)
        self._table.meta.client.transact_write_items(
            TransactItems=[{"Put": {"TableName": self._table.name, "Item": {**key, **item}}} for key in keys]
        )

    def delete_membership(self, tenant_id: str, subject: str) -> None:
        keys = _membership_keys(tenant_id, subject)
        self._table.meta.client.transact_write_items(
            TransactItems=[{"Delete": {"TableName": self._table.name, "Key": key}} for key in keys]
        )

    def admins_of(self, tenant_id: str) -> list[Membership]:
        items = self._query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(tenant_admin_sk("")),
            ConsistentRead=True,
        )
        return [Membership.model_validate(item) for item in items]

    def put_operator(self, subject: str, email: str, added_by: str) -> None:
        self._table.put_item(
            Item={
                "pk": admin_pk(subject),
                "sk": OPERATOR_SK,
                "email": email,
                "added_at": datetime.now(UTC).isoformat(),
                "added_by": added_by,
            }
        )

    def delete_operator(self, subject: str) -> None:
        self._table.delete_item(Key={"pk": admin_pk(subject), "sk": OPERATOR_SK})

    def operators(self) -> list[dict[str, Any]]:
        """Every operator (rare, so a scan)."""
        return [
            {"subject": str(item["pk"]).removeprefix(admin_pk("")), "email": item.get("email", "")}
            for item in scan_all(self._table, FilterExpression=Attr("sk").eq(OPERATOR_SK))
        ]

    def sign_out(self, subject: str, at: datetime) -> None:
        """Tokens issued before `at` no longer count (the page's Sign out; they stay valid at the IdP)."""
        self._table.put_item(
            Item={"pk": admin_pk(subject), "sk": PROFILE_SK, "signed_out_at": int(at.timestamp())}
        )


def _membership_keys(tenant_id: str, subject: str) -> list[dict[str, str]]:
    return [
        {"pk": admin_pk(subject), "sk": admin_tenant_sk(tenant_id)},
        {"pk": tenant_pk(tenant_id), "sk": tenant_admin_sk(subject)},
    ]
