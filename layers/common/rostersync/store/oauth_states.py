"""Pending OAuth authorizations (pk T#<t>, sk OAUTH#<state>): single use, gone after ten minutes."""

from __future__ import annotations

import time
from dataclasses import dataclass

from botocore.exceptions import ClientError

from rostersync.store.dynamo import TableRecords, is_conditional_failure
from rostersync.store.keys import oauth_sk, tenant_pk


@dataclass(frozen=True)
class OAuthState:
    tenant_id: str
    state: str
    expires_at: int
    started_by: str  # the admin (token subject) who asked for the authorization
    browser_bound: bool  # the callback must come back to the browser that opened the start link
    redirect_uri: str | None
    browser_hash: str | None  # sha256 of the cookie set on the browser that opened the start link


def _state_key(tenant_id: str, state: str) -> dict[str, str]:
    return {"pk": tenant_pk(tenant_id), "sk": oauth_sk(state)}


class OAuthStateRecords(TableRecords):
    def put_oauth_state(
        self, tenant_id: str, state: str, ttl_seconds: int, started_by: str, *, browser_bound: bool = True
    ) -> None:
        self._table.put_item(
            Item={
                **_state_key(tenant_id, state),
                "expires_at": int(time.time()) + ttl_seconds,
                "started_by": started_by,
                "browser_bound": browser_bound,
            }
        )

    def open_oauth_state(self, tenant_id: str, state: str, redirect_uri: str, browser_hash: str) -> bool:
        """Bind a live state to the browser that opened its start link; a start link opens once."""
        try:
            self._table.update_item(
                Key=_state_key(tenant_id, state),
                UpdateExpression="SET redirect_uri = :uri, browser_hash = :browser",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(browser_hash) "
                "AND expires_at >= :now",
                ExpressionAttributeValues={
                    ":uri": redirect_uri,
                    ":browser": browser_hash,
                    ":now": int(time.time()),
                },
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def peek_oauth_state(self, tenant_id: str, state: str) -> OAuthState | None:
        """A live state, read without spending it (the callback checks its browser binding first)."""
        item = self._table.get_item(Key=_state_key(tenant_id, state), ConsistentRead=True).get("Item")
        # DynamoDB deletes expired items only eventually, so expiry is checked on read.
        if not item or int(item["expires_at"]) < time.time():
            return None
        return OAuthState(
            tenant_id,
            state,
            int(item["expires_at"]),
            str(item["started_by"]),
            bool(item.get("browser_bound", True)),
            item.get("redirect_uri"),
            item.get("browser_hash"),
        )

    def spend_oauth_state(self, pending: OAuthState) -> bool:
        """Delete a peeked state if it is still the one peeked: a state works once, even under
        concurrent callbacks."""
        try:
            self._table.delete_item(
                Key=_state_key(pending.tenant_id, pending.state),
                ConditionExpression="browser_hash = :browser AND expires_at >= :now",
                ExpressionAttributeValues={":browser": pending.browser_hash, ":now": int(time.time())},
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True
