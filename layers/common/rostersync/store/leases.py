"""Short-lived claims on a tenant: "sync now" cooldowns, use budgets, the token refresh lock and the
Canvas concurrency slots (how many there are follows the tenant's shared in-flight limit). Each lease ends
by itself (a time in the item), so a crashed holder frees it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from rostersync.store.dynamo import TableRecords, is_conditional_failure
from rostersync.store.keys import CANVAS_LIMIT_SK, TENANT_SK, budget_sk, cooldown_sk, slot_sk, tenant_pk

CANVAS_LIMIT_TTL_SECONDS = 86_400


class LeaseRecords(TableRecords):
    # -- "sync now" cooldowns and budgets ------------------------------------------------------
    def claim_cooldown(self, tenant_id: str, scope: str, seconds: int) -> datetime | None:
        """Start a cooldown for `scope`; when one is still running, return when it ends instead."""
        now = time.time()
        key = {"pk": tenant_pk(tenant_id), "sk": cooldown_sk(scope)}
        try:
            self._table.put_item(
                Item={**key, "until": int(now + seconds), "expires_at": int(now + seconds) + 3600},
                ConditionExpression="attribute_not_exists(pk) OR #until <= :now",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={":now": int(now)},
            )
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            item = self._table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
            return datetime.fromtimestamp(int(item.get("until", now)), UTC)
        return None

    def spend_budget(self, tenant_id: str, scope: str, limit: int, window_seconds: int) -> bool:
        """Count one use of `scope` in the current fixed window; False, counting nothing, once `limit`
        uses were counted in it."""
        now = int(time.time())
        window_start = now - now % window_seconds
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": budget_sk(scope, window_start)},
                UpdateExpression="ADD used :one SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(used) OR used < :limit",
                ExpressionAttributeValues={
                    ":one": 1,
                    ":limit": limit,
                    ":expires": window_start + window_seconds + 3600,
                },
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    # -- token refresh lock (on the tenant's row) ----------------------------------------------
    def acquire_refresh_lock(self, tenant_id: str, holder: str, lease_seconds: int) -> bool:
        now = int(time.time())
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": TENANT_SK},
                UpdateExpression="SET refresh_lock_holder = :holder, refresh_lock_until = :until",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(refresh_lock_until) OR refresh_lock_until < :now)",
                ExpressionAttributeValues={":holder": holder, ":until": now + lease_seconds, ":now": now},
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def release_refresh_lock(self, tenant_id: str, holder: str) -> None:
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": TENANT_SK},
                UpdateExpression="REMOVE refresh_lock_holder, refresh_lock_until",
                ConditionExpression="refresh_lock_holder = :holder",
                ExpressionAttributeValues={":holder": holder},
            )
        except ClientError as error:
            if not is_conditional_failure(error):  # the lease ran out and another holder took it
                raise

    # -- Canvas concurrency slots --------------------------------------------------------------
    def acquire_canvas_slot(self, tenant_id: str, slot: int, holder: str, lease_seconds: int) -> bool:
        """Take slot `slot` if it is free or its lease ran out (a crashed worker frees it that way)."""
        now = int(time.time())
        try:
            self._table.put_item(
                Item={
                    "pk": tenant_pk(tenant_id),
                    "sk": slot_sk(slot),
                    "holder": holder,
                    "lease_until": now + lease_seconds,
                    "expires_at": now + lease_seconds + 3600,
                },
                ConditionExpression="attribute_not_exists(pk) OR lease_until < :now",
                ExpressionAttributeValues={":now": now},
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def release_canvas_slot(self, tenant_id: str, slot: int, holder: str) -> None:
        try:
            self._table.delete_item(
                Key={"pk": tenant_pk(tenant_id), "sk": slot_sk(slot)},
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": holder},
            )
        except ClientError as error:
            if not is_conditional_failure(error):  # the lease ran out and another worker holds it now
                raise

    # -- the tenant's in-flight Canvas limit (how many slots there are) ------------------------
    def canvas_limit(self, tenant_id: str) -> int | None:
        """The in-flight limit the tenant's workers last agreed on; None before any was saved."""
        item = self._table.get_item(Key={"pk": tenant_pk(tenant_id), "sk": CANVAS_LIMIT_SK}).get("Item")
        return int(item["limit"]) if item else None

    def save_canvas_limit(self, tenant_id: str, limit: int) -> None:
        now = int(time.time())
        self._table.put_item(
            Item={
                "pk": tenant_pk(tenant_id),
                "sk": CANVAS_LIMIT_SK,
                "limit": limit,
                "expires_at": now + CANVAS_LIMIT_TTL_SECONDS,
            }
        )
