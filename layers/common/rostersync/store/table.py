"""The single DynamoDB table. Every key of a tenant's data starts with `T#<tenant id>`.

Layout (pk / sk):
  T#<t>                 TENANT                  the tenant's settings and status (gsi1: TENANTS / <t>)
  T#<t>                 OAUTH#<state>           a pending OAuth authorization (TTL 10 min, single use)
  T#<t>                 SLOT#<n>                a leased Canvas concurrency slot (n < the per-tenant cap)
  T#<t>                 COURSE#<course>         a synced course (data + content hash, its roster's
                                                committed generation `gen` and that roster's digest,
                                                a writer's lease; when it left the tenant's selection,
                                                out_of_scope_at / _reason / _run)
  T#<t>                 MEMBER#<user>#<course>  the user is on that course's roster (for live user events)
  T#<t>#C#<course>      SECTION# / USER# / ENROLLMENT#<id>   the course's roster (data + content hash,
                                                generation, the committed version while uncommitted)
  T#<t>                 RUN#<run>               a sync run
  T#<t>#RUN#<run>       COURSE#<course>         one course's result in that run
  T#<t>#RUN#<run>#PENDING  COURSE#<course>      a course of the run without a final result yet
  T#<t>#RUN#<run>       ERROR#<course>#<user>#<code>   a sync error of that run
  T#<t>#HOLD            COURSE#<course>         a course's mass drop held for approval
  T#<t>#HOLD            DECIDED#<time>#<course> a decided hold (who, when, which drops)
  T#<t>#EVENTS          <time>#<key digest>     what became of a live event (TTL a week)
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from rostersync.models import (
    CourseOutcome,
    CourseResult,
    HeldSync,
    LiveEventRecord,
    RunStatus,
    SyncError,
    SyncRun,
    Tenant,
    TenantSettings,
    TenantStatus,
)

TENANTS_INDEX = "gsi1"
# Longer than the worker's Lambda timeout: a live writer never loses its course's write lease.
COURSE_WRITE_LEASE_SECONDS = 300
# A run's pending courses outlive any run (a crashed planner's markers go with DynamoDB's TTL).
PENDING_COURSE_TTL_SECONDS = 7 * 24 * 3600


def tenant_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}"


def course_pk(tenant_id: str, course_id: int) -> str:
    return f"T#{tenant_id}#C#{course_id}"


def run_pk(tenant_id: str, run_id: str) -> str:
    return f"T#{tenant_id}#RUN#{run_id}"


def pending_pk(tenant_id: str, run_id: str) -> str:
    return f"T#{tenant_id}#RUN#{run_id}#PENDING"


def hold_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}#HOLD"


def live_events_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}#EVENTS"


LIVE_EVENT_RECORD_TTL_SECONDS = 7 * 24 * 3600


def _is_conditional_failure(error: ClientError) -> bool:
    code: str = error.response.get("Error", {}).get("Code", "")
    return code == "ConditionalCheckFailedException"


def _every_page(operation: Callable[..., dict[str, Any]], **kwargs: Any) -> Iterator[dict[str, Any]]:
    while True:
        response = operation(**kwargs)
        yield from response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            return
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def query_all(table: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item a query matches, page after page."""
    return _every_page(table.query, **kwargs)


def scan_all(table: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    return _every_page(table.scan, **kwargs)


def _strip_keys(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key not in {"pk", "sk", "gsi1pk", "gsi1sk"}}


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _sortable(moment: datetime) -> str:
    """A UTC time as text that sorts as the time does (compared inside condition expressions)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _tenant_item(tenant: Tenant) -> dict[str, Any]:
    # Settings hold floats, which DynamoDB's resource API refuses: they are stored as JSON text.
    return {
        **_without_none(tenant.model_dump(mode="json", exclude={"settings"})),
        "settings": tenant.settings.model_dump_json(),
    }


def _tenant_from(item: dict[str, Any]) -> Tenant:
    values = _strip_keys(item)
    values["settings"] = json.loads(values.get("settings") or "{}")
    return Tenant.model_validate(values)


@dataclass(frozen=True)
class StoredItem:
    """A roster object as stored: its sort key, canonical JSON and that JSON's hash."""

    sk: str
    data: str
    content_hash: str


@dataclass(frozen=True)
class OAuthState:
    tenant_id: str
    state: str
    expires_at: int
    started_by: str  # the admin (token subject) who asked for the authorization
    browser_bound: bool  # the callback must come back to the browser that opened the start link
    redirect_uri: str | None
    browser_hash: str | None  # sha256 of the cookie set on the browser that opened the start link


@dataclass(frozen=True)
class OutOfScope:
    """A course the tenant's selection no longer covers: since when, why, and which run found it."""

    at: datetime
    reason: str
    run_id: str


@dataclass(frozen=True)
class CourseRow:
    """A course's own row: the committed generation of its roster, that roster's digest, the course itself."""

    course_id: int
    generation: int
    roster_digest: str | None
    course: StoredItem | None
    out_of_scope: OutOfScope | None = None


def _course_row(item: dict[str, Any]) -> CourseRow:
    course = StoredItem(item["sk"], item["data"], item["content_hash"]) if "data" in item else None
    out_of_scope = (
        OutOfScope(
            datetime.fromisoformat(item["out_of_scope_at"]),
            str(item["out_of_scope_reason"]),
            str(item["out_of_scope_run"]),
        )
        if "out_of_scope_at" in item
        else None
    )
    return CourseRow(
        int(item["sk"].removeprefix("COURSE#")),
        int(item.get("gen", 0)),
        item.get("roster_digest"),
        course,
        out_of_scope,
    )


def roster_digest(items: Iterable[StoredItem]) -> str:
    """One hash of a whole roster: equal digests mean equal items (sort keys and content hashes)."""
    lines = sorted(f"{item.sk}\t{item.content_hash}" for item in items)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


class TenantExistsError(Exception):
    pass


class CourseWriteConflict(Exception):
    """Another writer committed the course since it was read, or holds its write lease."""


def _previous(item: StoredItem | None) -> dict[str, str]:
    return {} if item is None else {"prev_data": item.data, "prev_hash": item.content_hash}


class RosterTable:
    def __init__(self, table_name: str, resource: Any = None) -> None:
        self._table = (resource or boto3.resource("dynamodb")).Table(table_name)

    # -- tenants -------------------------------------------------------------------------------
    def create_tenant(self, tenant: Tenant) -> None:
        item = {
            "pk": tenant_pk(tenant.tenant_id),
            "sk": "TENANT",
            "gsi1pk": "TENANTS",
            "gsi1sk": tenant.tenant_id,
            **_tenant_item(tenant),
        }
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if _is_conditional_failure(error):
                raise TenantExistsError(tenant.tenant_id) from error
            raise

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        item = self._table.get_item(
            Key={"pk": tenant_pk(tenant_id), "sk": "TENANT"}, ConsistentRead=True
        ).get("Item")
        return _tenant_from(item) if item else None

    def list_tenants(self) -> list[Tenant]:
        items = self._query(IndexName=TENANTS_INDEX, KeyConditionExpression=Key("gsi1pk").eq("TENANTS"))
        return [_tenant_from(item) for item in items]

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
            Key={"pk": tenant_pk(tenant.tenant_id), "sk": "TENANT"},
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={f"#{name}": name for name in values},
            ExpressionAttributeValues={
                f":{name}": value for name, value in values.items() if value is not None
            },
        )

    def delete_tenant(self, tenant_id: str) -> int:
        """Delete every item of the tenant (rare, so one filtered scan); return the count."""
        own = Attr("pk").eq(tenant_pk(tenant_id)) | Attr("pk").begins_with(f"{tenant_pk(tenant_id)}#")
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
            Key={"pk": tenant_pk(tenant_id), "sk": "TENANT"},
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
            Key={"pk": tenant_pk(tenant_id), "sk": "TENANT"},
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=values,
        )

    def mark_needs_reauthorization(self, tenant_id: str, reason: str) -> None:
        self._table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": "TENANT"},
            UpdateExpression="SET #status = :status, status_reason = :reason",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":status": TenantStatus.NEEDS_REAUTHORIZATION.value,
                ":reason": reason,
            },
        )

    # -- "sync now" cooldowns -------------------------------------------------------------------
    def claim_cooldown(self, tenant_id: str, scope: str, seconds: int) -> datetime | None:
        """Start a cooldown for `scope`; when one is still running, return when it ends instead."""
        now = time.time()
        key = {"pk": tenant_pk(tenant_id), "sk": f"COOLDOWN#{scope}"}
        try:
            self._table.put_item(
                Item={**key, "until": int(now + seconds), "expires_at": int(now + seconds) + 3600},
                ConditionExpression="attribute_not_exists(pk) OR #until <= :now",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={":now": int(now)},
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
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
                Key={"pk": tenant_pk(tenant_id), "sk": f"BUDGET#{scope}#{window_start}"},
                UpdateExpression="ADD used :one SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(used) OR used < :limit",
                ExpressionAttributeValues={
                    ":one": 1,
                    ":limit": limit,
                    ":expires": window_start + window_seconds + 3600,
                },
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    # -- token refresh lock --------------------------------------------------------------------
    def acquire_refresh_lock(self, tenant_id: str, holder: str, lease_seconds: int) -> bool:
        now = int(time.time())
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": "TENANT"},
                UpdateExpression="SET refresh_lock_holder = :holder, refresh_lock_until = :until",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(refresh_lock_until) OR refresh_lock_until < :now)",
                ExpressionAttributeValues={":holder": holder, ":until": now + lease_seconds, ":now": now},
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def release_refresh_lock(self, tenant_id: str, holder: str) -> None:
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": "TENANT"},
                UpdateExpression="REMOVE refresh_lock_holder, refresh_lock_until",
                ConditionExpression="refresh_lock_holder = :holder",
                ExpressionAttributeValues={":holder": holder},
            )
        except ClientError as error:
            if not _is_conditional_failure(error):  # the lease ran out and another holder took it
                raise

    # -- Canvas concurrency slots --------------------------------------------------------------
    def acquire_canvas_slot(self, tenant_id: str, slot: int, holder: str, lease_seconds: int) -> bool:
        """Take slot `slot` if it is free or its lease ran out (a crashed worker frees it that way)."""
        now = int(time.time())
        try:
            self._table.put_item(
                Item={
                    "pk": tenant_pk(tenant_id),
                    "sk": f"SLOT#{slot}",
                    "holder": holder,
                    "lease_until": now + lease_seconds,
                    "expires_at": now + lease_seconds + 3600,
                },
                ConditionExpression="attribute_not_exists(pk) OR lease_until < :now",
                ExpressionAttributeValues={":now": now},
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def release_canvas_slot(self, tenant_id: str, slot: int, holder: str) -> None:
        try:
            self._table.delete_item(
                Key={"pk": tenant_pk(tenant_id), "sk": f"SLOT#{slot}"},
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": holder},
            )
        except ClientError as error:
            if not _is_conditional_failure(error):  # the lease ran out and another worker holds it now
                raise

    # -- OAuth states --------------------------------------------------------------------------
    def put_oauth_state(
        self, tenant_id: str, state: str, ttl_seconds: int, started_by: str, *, browser_bound: bool = True
    ) -> None:
        self._table.put_item(
            Item={
                "pk": tenant_pk(tenant_id),
                "sk": f"OAUTH#{state}",
                "expires_at": int(time.time()) + ttl_seconds,
                "started_by": started_by,
                "browser_bound": browser_bound,
            }
        )

    def open_oauth_state(self, tenant_id: str, state: str, redirect_uri: str, browser_hash: str) -> bool:
        """Bind a live state to the browser that opened its start link; a start link opens once."""
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": f"OAUTH#{state}"},
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
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def peek_oauth_state(self, tenant_id: str, state: str) -> OAuthState | None:
        """A live state, read without spending it (the callback checks its browser binding first)."""
        item = self._table.get_item(
            Key={"pk": tenant_pk(tenant_id), "sk": f"OAUTH#{state}"}, ConsistentRead=True
        ).get("Item")
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
                Key={"pk": tenant_pk(pending.tenant_id), "sk": f"OAUTH#{pending.state}"},
                ConditionExpression="browser_hash = :browser AND expires_at >= :now",
                ExpressionAttributeValues={":browser": pending.browser_hash, ":now": int(time.time())},
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    # -- runs ----------------------------------------------------------------------------------
    def put_run(self, run: SyncRun) -> None:
        self._table.put_item(
            Item={
                "pk": tenant_pk(run.tenant_id),
                "sk": f"RUN#{run.run_id}",
                **_without_none(run.model_dump(mode="json")),
            }
        )

    def get_run(self, tenant_id: str, run_id: str) -> SyncRun | None:
        item = self._table.get_item(
            Key={"pk": tenant_pk(tenant_id), "sk": f"RUN#{run_id}"}, ConsistentRead=True
        ).get("Item")
        return SyncRun.model_validate(_strip_keys(item)) if item else None

    def list_runs(self, tenant_id: str, limit: int = 20) -> list[SyncRun]:
        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with("RUN#"),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [SyncRun.model_validate(_strip_keys(item)) for item in response.get("Items", [])]

    def put_course_result(self, result: CourseResult) -> bool:
        """Record a course's outcome; a success already recorded is never overwritten by a redelivery."""
        item = {
            "pk": run_pk(result.tenant_id, result.run_id),
            "sk": f"COURSE#{result.course_id}",
            **_without_none(result.model_dump(mode="json")),
        }
        try:
            self._table.put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR outcome <> :succeeded",
                ExpressionAttributeValues={":succeeded": CourseOutcome.SUCCEEDED.value},
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def list_course_results(self, tenant_id: str, run_id: str) -> list[CourseResult]:
        items = self._query(
            KeyConditionExpression=Key("pk").eq(run_pk(tenant_id, run_id)) & Key("sk").begins_with("COURSE#"),
            ConsistentRead=True,
        )
        return [CourseResult.model_validate(_strip_keys(item)) for item in items]

    # A run is done when its last pending course is cleared: each check reads at most one item, where
    # counting the results would read the whole run from every course (quadratic in the run's size).
    def put_pending_courses(self, tenant_id: str, run_id: str, course_ids: Iterable[int]) -> None:
        pk, expires_at = pending_pk(tenant_id, run_id), int(time.time()) + PENDING_COURSE_TTL_SECONDS
        with self._table.batch_writer() as batch:
            for course_id in course_ids:
                batch.put_item(Item={"pk": pk, "sk": f"COURSE#{course_id}", "expires_at": expires_at})

    def clear_pending_course(self, tenant_id: str, run_id: str, course_id: int) -> None:
        self._table.delete_item(Key={"pk": pending_pk(tenant_id, run_id), "sk": f"COURSE#{course_id}"})

    def has_pending_courses(self, tenant_id: str, run_id: str) -> bool:
        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(pending_pk(tenant_id, run_id)),
            ConsistentRead=True,
            Limit=1,
        )
        return bool(response.get("Items"))

    def put_sync_errors(self, errors: Iterable[SyncError]) -> None:
        with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for error in errors:
                batch.put_item(
                    Item={
                        "pk": run_pk(error.tenant_id, error.run_id),
                        "sk": f"ERROR#{error.course_id or '-'}#{error.user_id or '-'}#{error.code}#"
                        + hashlib.sha256(error.message.encode()).hexdigest()[:8],
                        **_without_none(error.model_dump(mode="json")),
                    }
                )

    def list_sync_errors(self, tenant_id: str, run_id: str) -> list[SyncError]:
        items = self._query(
            KeyConditionExpression=Key("pk").eq(run_pk(tenant_id, run_id)) & Key("sk").begins_with("ERROR#")
        )
        return [SyncError.model_validate(_strip_keys(item)) for item in items]

    # -- holds ---------------------------------------------------------------------------------
    def put_hold(self, hold: HeldSync) -> None:
        # One attribute of JSON: a held course of a few thousand drops stays well under DynamoDB's 400 KB.
        self._table.put_item(
            Item={
                "pk": hold_pk(hold.tenant_id),
                "sk": f"COURSE#{hold.course_id}",
                "hold": hold.model_dump_json(),
            }
        )

    def get_hold(self, tenant_id: str, course_id: int) -> HeldSync | None:
        key = {"pk": hold_pk(tenant_id), "sk": f"COURSE#{course_id}"}
        item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        return HeldSync.model_validate_json(item["hold"]) if item else None

    def list_holds(self, tenant_id: str) -> list[HeldSync]:
        """Each course's current hold (pending, or rejected and remembered)."""
        items = self._query(
            KeyConditionExpression=Key("pk").eq(hold_pk(tenant_id)) & Key("sk").begins_with("COURSE#")
        )
        return [HeldSync.model_validate_json(item["hold"]) for item in items]

    def delete_hold(self, tenant_id: str, course_id: int) -> None:
        self._table.delete_item(Key={"pk": hold_pk(tenant_id), "sk": f"COURSE#{course_id}"})

    def put_hold_decision(self, hold: HeldSync) -> None:
        """Keep a decided hold (who, when, which drops) beside the current holds, as their history."""
        decided_at = (hold.decided_at or hold.created_at).isoformat()
        record = hold.model_copy(update={"puts": [], "deletes": []})  # the drops list says what was held
        self._table.put_item(
            Item={
                "pk": hold_pk(hold.tenant_id),
                "sk": f"DECIDED#{decided_at}#{hold.course_id}",
                "hold": record.model_dump_json(),
            }
        )

    def list_hold_decisions(self, tenant_id: str, limit: int = 50) -> list[HeldSync]:
        """The latest decided holds first."""
        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(hold_pk(tenant_id)) & Key("sk").begins_with("DECIDED#"),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [HeldSync.model_validate_json(item["hold"]) for item in response["Items"]]

    # -- live events ---------------------------------------------------------------------------
    def put_live_event_record(self, record: LiveEventRecord) -> None:
        digest = hashlib.sha256(record.dedupe_key.encode()).hexdigest()[:12]
        self._table.put_item(
            Item={
                "pk": live_events_pk(record.tenant_id),
                "sk": f"{record.received_at.isoformat()}#{digest}",
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

    def finish_run(self, tenant_id: str, run_id: str, status: RunStatus, finished_at: datetime) -> bool:
        """Close a running run once; False when another worker closed it first."""
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": f"RUN#{run_id}"},
                UpdateExpression="SET #status = :status, finished_at = :finished",
                ConditionExpression="#status = :running",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":status": status.value,
                    ":finished": finished_at.isoformat(),
                    ":running": RunStatus.RUNNING.value,
                },
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    # -- roster --------------------------------------------------------------------------------
    # A course's roster changes are one commit. The course row holds the committed generation `gen`; a
    # writer takes the row's write lease (conditional on the generation its diff was made against, so a
    # stale diff is a CourseWriteConflict), writes its items tagged with the next generation and each
    # with its committed version as `prev_data`, then commits by setting `gen` and releasing the lease in
    # one update. Readers use an item as it is when its generation is committed and `prev_data` otherwise,
    # so a course reads as its previous state or its full new state, even after a crash mid-write.
    def course_snapshot(self, tenant_id: str, course_id: int) -> tuple[dict[str, StoredItem], int]:
        """The course's committed roster items and their generation."""
        items, _, generation = self._course_view(tenant_id, course_id)
        return items, generation

    def course_row(self, tenant_id: str, course_id: int) -> CourseRow | None:
        """The course's own row; None when no writer ever claimed it, so no roster item of it exists."""
        item = self._table.get_item(
            Key={"pk": tenant_pk(tenant_id), "sk": f"COURSE#{course_id}"}, ConsistentRead=True
        ).get("Item")
        return _course_row(item) if item is not None else None

    def list_course_rows(self, tenant_id: str) -> list[CourseRow]:
        """Every course row of the tenant (one query, paged)."""
        items = self._query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with("COURSE#"),
            ConsistentRead=True,
        )
        return [_course_row(item) for item in items]

    def mark_out_of_scope(
        self, tenant_id: str, reasons: Mapping[int, str], run_id: str, at: datetime
    ) -> None:
        """Mark courses as left the tenant's selection; a course already marked keeps its first mark."""
        for course_id, reason in reasons.items():
            try:
                self._table.update_item(
                    Key={"pk": tenant_pk(tenant_id), "sk": f"COURSE#{course_id}"},
                    UpdateExpression="SET out_of_scope_at = :at, out_of_scope_reason = :reason, "
                    "out_of_scope_run = :run",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(out_of_scope_at)",
                    ExpressionAttributeValues={":at": _sortable(at), ":reason": reason, ":run": run_id},
                )
            except ClientError as error:
                if not _is_conditional_failure(error):
                    raise

    def bring_into_scope(self, tenant_id: str, course_id: int, planned_at: datetime) -> bool:
        """Clear a course's out-of-scope mark unless a planner marked it after `planned_at` (when the
        caller's planner found it selected); False when such a newer mark stays."""
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": f"COURSE#{course_id}"},
                UpdateExpression="REMOVE out_of_scope_at, out_of_scope_reason, out_of_scope_run",
                ConditionExpression="attribute_not_exists(out_of_scope_at) OR out_of_scope_at < :planned",
                ExpressionAttributeValues={":planned": _sortable(planned_at)},
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def course_items(self, tenant_id: str, course_id: int) -> dict[str, StoredItem]:
        return self.course_snapshot(tenant_id, course_id)[0]

    def _committed_generation(self, tenant_id: str, course_id: int) -> int:
        row = self._table.get_item(
            Key={"pk": tenant_pk(tenant_id), "sk": f"COURSE#{course_id}"},
            ConsistentRead=True,
            ProjectionExpression="gen",
        ).get("Item")
        return int((row or {}).get("gen", 0))

    def _course_view(
        self, tenant_id: str, course_id: int, generation: int | None = None
    ) -> tuple[dict[str, StoredItem], list[dict[str, Any]], int]:
        """(committed items, raw items, generation); read again when a commit lands during the read."""
        for _ in range(5):
            seen = self._committed_generation(tenant_id, course_id) if generation is None else generation
            raw = list(
                self._query(
                    KeyConditionExpression=Key("pk").eq(course_pk(tenant_id, course_id)), ConsistentRead=True
                )
            )
            if generation is not None or self._committed_generation(tenant_id, course_id) == seen:
                break
        committed: dict[str, StoredItem] = {}
        for item in raw:
            if int(item.get("gen", 0)) <= seen:
                if not item.get("deleted"):
                    committed[item["sk"]] = StoredItem(item["sk"], item["data"], item["content_hash"])
            elif "prev_data" in item:  # written by an uncommitted (running or crashed) writer
                committed[item["sk"]] = StoredItem(item["sk"], item["prev_data"], item["prev_hash"])
        return committed, raw, seen

    def write_course(
        self,
        tenant_id: str,
        course_id: int,
        course: StoredItem | None,
        puts: Iterable[StoredItem],
        deletes: Iterable[str],
        *,
        expected_generation: int | None = None,
        expected_items: Mapping[str, StoredItem] | None = None,
        lease_seconds: int = COURSE_WRITE_LEASE_SECONDS,
    ) -> None:
        """Commit a course's changed roster items (and its own row when `course` is given) all at once.

        With `expected_generation`, the diff was made against that committed generation: if another
        writer committed since, or is writing now, nothing is written and CourseWriteConflict is raised.
        `expected_items` are the roster at that generation, when the caller has read it: the roster is
        then read again only if a crashed writer left items to put back.
        """
        puts, deletes = list(puts), list(deletes)
        if course is None and not puts and not deletes:
            return
        holder = uuid.uuid4().hex
        committed, left_uncommitted = self._claim_course(
            tenant_id, course_id, holder, expected_generation, lease_seconds
        )
        current: dict[str, StoredItem]
        raw: list[dict[str, Any]] = []
        if expected_items is not None and expected_generation is not None and not left_uncommitted:
            current = dict(expected_items)
        else:
            current, raw, _ = self._course_view(tenant_id, course_id, committed)
        generation = committed + 1
        pk = course_pk(tenant_id, course_id)
        written = {item.sk for item in puts} | set(deletes)
        with self._table.batch_writer() as batch:
            for item in raw:  # what a crashed writer left uncommitted goes back to its committed version
                if int(item.get("gen", 0)) > committed and item["sk"] not in written:
                    if "prev_data" in item:
                        batch.put_item(
                            Item={"pk": pk, "sk": item["sk"], "data": item["prev_data"],
                                  "content_hash": item["prev_hash"], "gen": committed}
                        )  # fmt: skip
                    else:
                        batch.delete_item(Key={"pk": pk, "sk": item["sk"]})
            for put in puts:
                batch.put_item(
                    Item={"pk": pk, "sk": put.sk, "data": put.data, "content_hash": put.content_hash,
                          "gen": generation, **_previous(current.get(put.sk))}
                )  # fmt: skip
                if put.sk.startswith("USER#"):
                    # Which courses hold a user, for a live user event (written when the user's row changes).
                    user_id = put.sk.removeprefix("USER#")
                    batch.put_item(Item={"pk": tenant_pk(tenant_id), "sk": f"MEMBER#{user_id}#{course_id}"})
            for sk in deletes:
                before = current.get(sk)
                if before is not None:  # a tombstone until the commit, then removed
                    batch.put_item(
                        Item={"pk": pk, "sk": sk, "data": before.data, "content_hash": before.content_hash,
                              "gen": generation, "deleted": True, **_previous(before)}
                    )  # fmt: skip
        after = current | {item.sk: item for item in puts}
        for sk in deletes:
            after.pop(sk, None)
        self._commit_course(
            tenant_id, course_id, holder, generation, digest=roster_digest(after.values()), course=course
        )
        for sk in deletes:
            try:
                self._table.delete_item(
                    Key={"pk": pk, "sk": sk},
                    ConditionExpression="gen = :gen AND attribute_exists(deleted)",
                    ExpressionAttributeValues={":gen": generation},
                )
            except ClientError as error:
                if not _is_conditional_failure(error):  # a later writer already rewrote it
                    raise

    def _claim_course(
        self, tenant_id: str, course_id: int, holder: str, expected_generation: int | None, lease_seconds: int
    ) -> tuple[int, bool]:
        """Take the course's write lease; return its committed generation and whether a crashed writer
        held the lease before (and so may have left uncommitted items)."""
        now = int(time.time())
        condition = "(attribute_not_exists(lease_until) OR lease_until < :now)"
        values: dict[str, Any] = {":holder": holder, ":until": now + lease_seconds, ":now": now}
        if expected_generation is not None:
            values[":gen"] = expected_generation
            condition += " AND " + (
                "(attribute_not_exists(gen) OR gen = :gen)" if expected_generation == 0 else "gen = :gen"
            )
        try:
            row = self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": f"COURSE#{course_id}"},
                UpdateExpression="SET lease_holder = :holder, lease_until = :until",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
            ).get("Attributes", {})
        except ClientError as error:
            if _is_conditional_failure(error):
                raise CourseWriteConflict(
                    f"course {course_id} changed or is being written since it was read"
                ) from error
            raise
        return int(row.get("gen", 0)), "lease_holder" in row

    def _commit_course(
        self,
        tenant_id: str,
        course_id: int,
        holder: str,
        generation: int,
        *,
        digest: str,
        course: StoredItem | None,
    ) -> None:
        sets = "gen = :gen, roster_digest = :digest" + (
            ", #data = :data, content_hash = :hash" if course is not None else ""
        )
        values: dict[str, Any] = {":gen": generation, ":digest": digest, ":holder": holder}
        if course is not None:
            values |= {":data": course.data, ":hash": course.content_hash}
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": f"COURSE#{course_id}"},
                UpdateExpression=f"SET {sets} REMOVE lease_holder, lease_until",
                ConditionExpression="lease_holder = :holder",
                ExpressionAttributeValues=values,
                **({"ExpressionAttributeNames": {"#data": "data"}} if course is not None else {}),
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                raise CourseWriteConflict(
                    f"course {course_id}: the write lease ran out before the commit"
                ) from error
            raise

    def courses_of_user(self, tenant_id: str, user_id: int) -> list[int]:
        items = self._query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(f"MEMBER#{user_id}#")
        )
        return [int(item["sk"].rsplit("#", 1)[1]) for item in items]

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return query_all(self._table, **kwargs)
