"""Courses and their rosters: each course's row (pk T#<t>, sk COURSE#<course>), its roster items
(pk T#<t>#C#<course>), which courses hold a user (MEMBER#<user>#<course>), and out-of-scope marks.

A course's roster changes are one commit. The course row holds the committed generation `gen`; a writer
takes the row's write lease (conditional on the generation its diff was made against, so a stale diff is a
CourseWriteConflictError), writes its items tagged with the next generation and each with its committed
version as `prev_data`, and its feed changes (store/feed.py), then commits by setting `gen` and releasing
the lease in one update, in one transaction with the tenant's next feed entry. Readers use an item as it
is when its generation is committed and `prev_data` otherwise, so a course reads as its previous state or
its full new state, even after a crash mid-write, and its feed holds exactly its committed changes.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from rostersync.store.dynamo import is_conditional_failure, sortable_time
from rostersync.store.feed import FeedChange, FeedCommitConflictError, FeedContentionError, FeedRecords
from rostersync.store.keys import (
    COURSE_PREFIX,
    USER_PREFIX,
    course_id_of,
    course_pk,
    course_sk,
    member_course_id,
    member_prefix,
    member_sk,
    tenant_pk,
)

# Longer than the worker's Lambda timeout: a live writer never loses its course's write lease.
COURSE_WRITE_LEASE_SECONDS = 300


@dataclass(frozen=True)
class StoredItem:
    """A roster object as stored: its sort key, canonical JSON and that JSON's hash."""

    sk: str
    data: str
    content_hash: str


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
    synced_at: str | None = None  # when its roster last changed (its last commit)


class CourseWriteConflictError(Exception):
    """Another writer committed the course since it was read, or holds its write lease."""


# What a commit means for the feed: (the roster before, the roster after, the course's own item after
# the commit, None if it never had one) -> its changes, in order.
DescribeChanges = Callable[
    [Mapping[str, StoredItem], Mapping[str, StoredItem], StoredItem | None], list[FeedChange]
]


def roster_digest(items: Iterable[StoredItem]) -> str:
    """One hash of a whole roster: equal digests mean equal items (sort keys and content hashes)."""
    lines = sorted(f"{item.sk}\t{item.content_hash}" for item in items)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def course_row_from_item(item: dict[str, Any]) -> CourseRow:
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
        course_id_of(item["sk"]),
        int(item.get("gen", 0)),
        item.get("roster_digest"),
        course,
        out_of_scope,
        item.get("synced_at"),
    )


def _previous(item: StoredItem | None) -> dict[str, str]:
    return {} if item is None else {"prev_data": item.data, "prev_hash": item.content_hash}


def _course_key(tenant_id: str, course_id: int) -> dict[str, str]:
    return {"pk": tenant_pk(tenant_id), "sk": course_sk(course_id)}


class RosterRecords(FeedRecords):
    # -- reading -------------------------------------------------------------------------------
    def course_snapshot(self, tenant_id: str, course_id: int) -> tuple[dict[str, StoredItem], int]:
        """The course's committed roster items and their generation."""
        items, _, generation = self._course_view(tenant_id, course_id)
        return items, generation

    def course_items(self, tenant_id: str, course_id: int) -> dict[str, StoredItem]:
        return self.course_snapshot(tenant_id, course_id)[0]

    def course_row(self, tenant_id: str, course_id: int) -> CourseRow | None:
        """The course's own row; None when no writer ever claimed it, so no roster item of it exists."""
        item = self._table.get_item(Key=_course_key(tenant_id, course_id), ConsistentRead=True).get("Item")
        return course_row_from_item(item) if item is not None else None

    def list_course_rows(self, tenant_id: str) -> list[CourseRow]:
        """Every course row of the tenant (one query, paged)."""
        items = self._query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(COURSE_PREFIX),
            ConsistentRead=True,
        )
        return [course_row_from_item(item) for item in items]

    def course_rows_page(
        self, tenant_id: str, after_course_id: int | None, limit: int
    ) -> tuple[list[CourseRow], int | None]:
        """Up to `limit` course rows after `after_course_id` (in key order) and the last one's id when
        more may follow."""
        start = (
            {"ExclusiveStartKey": _course_key(tenant_id, after_course_id)}
            if after_course_id is not None
            else {}
        )
        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(COURSE_PREFIX),
            ConsistentRead=True,
            Limit=limit,
            **start,
        )
        rows = [course_row_from_item(item) for item in response.get("Items", [])]
        more = "LastEvaluatedKey" in response and rows
        return rows, rows[-1].course_id if more else None

    def course_items_at(
        self, tenant_id: str, course_id: int, generation: int
    ) -> dict[str, StoredItem] | None:
        """The course's roster at `generation` (its row just read), or None when a commit landed meanwhile
        (read the row again): one query and one read of the generation."""
        items, _, _ = self._course_view(tenant_id, course_id, generation)
        return items if self._committed_generation(tenant_id, course_id) == generation else None

    def courses_of_user(self, tenant_id: str, user_id: int) -> list[int]:
        items = self._query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(member_prefix(user_id))
        )
        return [member_course_id(item["sk"]) for item in items]

    def _committed_generation(self, tenant_id: str, course_id: int) -> int:
        row = self._table.get_item(
            Key=_course_key(tenant_id, course_id), ConsistentRead=True, ProjectionExpression="gen"
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

    # -- out-of-scope marks --------------------------------------------------------------------
    def mark_out_of_scope(
        self, tenant_id: str, reasons: Mapping[int, str], run_id: str, at: datetime
    ) -> None:
        """Mark courses as left the tenant's selection; a course already marked keeps its first mark."""
        for course_id, reason in reasons.items():
            try:
                self._table.update_item(
                    Key=_course_key(tenant_id, course_id),
                    UpdateExpression="SET out_of_scope_at = :at, out_of_scope_reason = :reason, "
                    "out_of_scope_run = :run",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(out_of_scope_at)",
                    ExpressionAttributeValues={":at": sortable_time(at), ":reason": reason, ":run": run_id},
                )
            except ClientError as error:
                if not is_conditional_failure(error):
                    raise

    def bring_into_scope(self, tenant_id: str, course_id: int, planned_at: datetime) -> bool:
        """Clear a course's out-of-scope mark unless a planner marked it after `planned_at` (when the
        caller's planner found it selected); False when such a newer mark stays."""
        try:
            self._table.update_item(
                Key=_course_key(tenant_id, course_id),
                UpdateExpression="REMOVE out_of_scope_at, out_of_scope_reason, out_of_scope_run",
                ConditionExpression="attribute_not_exists(out_of_scope_at) OR out_of_scope_at < :planned",
                ExpressionAttributeValues={":planned": sortable_time(planned_at)},
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    # -- writing -------------------------------------------------------------------------------
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
        describe_changes: DescribeChanges,
    ) -> None:
        """Commit a course's changed roster items (and its own row when `course` is given) all at once.

        With `expected_generation`, the diff was made against that committed generation: if another
        writer committed since, or is writing now, nothing is written and CourseWriteConflictError is raised.
        `expected_items` are the roster at that generation, when the caller has read it: the roster is
        then read again only if a crashed writer left items to put back. `describe_changes` says what the
        commit changes, for the tenant's feed, committed with it.
        """
        puts, deletes = list(puts), list(deletes)
        if course is None and not puts and not deletes:
            return
        holder = uuid.uuid4().hex
        committed, left_uncommitted, course_before = self._claim_course(
            tenant_id, course_id, holder, expected_generation, lease_seconds
        )
        current, raw = self._roster_before_write(
            tenant_id,
            course_id,
            committed,
            expected_items if expected_generation is not None else None,
            left_uncommitted=left_uncommitted,
        )
        generation = committed + 1
        after = current | {item.sk: item for item in puts}
        for sk in deletes:
            after.pop(sk, None)
        changes = describe_changes(current, after, course or course_before)
        # The roster's next generation and its feed changes share the batch's pages.
        with self._table.batch_writer() as batch:
            self._put_course_items(
                batch,
                tenant_id,
                course_id,
                committed=committed,
                raw=raw,
                current=current,
                puts=puts,
                deletes=deletes,
            )
            self._put_changes(batch, tenant_id, course_id, generation, changes)
        self._commit_course(
            tenant_id,
            course_id,
            holder,
            generation,
            digest=roster_digest(after.values()),
            course=course,
            feed_changes=len(changes),
        )
        self._remove_tombstones(tenant_id, course_id, generation, deletes)

    def _claim_course(
        self, tenant_id: str, course_id: int, holder: str, expected_generation: int | None, lease_seconds: int
    ) -> tuple[int, bool, StoredItem | None]:
        """Take the course's write lease; return its committed generation, whether a crashed writer
        held the lease before (and so may have left uncommitted items), and the course's own item."""
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
                Key=_course_key(tenant_id, course_id),
                UpdateExpression="SET lease_holder = :holder, lease_until = :until",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
            ).get("Attributes", {})
        except ClientError as error:
            if is_conditional_failure(error):
                raise CourseWriteConflictError(
                    f"course {course_id} changed or is being written since it was read"
                ) from error
            raise
        course = StoredItem(row["sk"], row["data"], row["content_hash"]) if "data" in row else None
        return int(row.get("gen", 0)), "lease_holder" in row, course

    def _roster_before_write(
        self,
        tenant_id: str,
        course_id: int,
        committed: int,
        expected_items: Mapping[str, StoredItem] | None,
        *,
        left_uncommitted: bool,
    ) -> tuple[dict[str, StoredItem], list[dict[str, Any]]]:
        """The committed roster the write starts from, and the raw items, read only when the caller did
        not give the roster or a crashed writer may have left items to put back."""
        if expected_items is not None and not left_uncommitted:
            return dict(expected_items), []
        current, raw, _ = self._course_view(tenant_id, course_id, committed)
        return current, raw

    def _put_course_items(
        self,
        batch: Any,
        tenant_id: str,
        course_id: int,
        *,
        committed: int,
        raw: list[dict[str, Any]],
        current: Mapping[str, StoredItem],
        puts: list[StoredItem],
        deletes: list[str],
    ) -> None:
        """Write the next generation, uncommitted: each put with its committed version, a tombstone for
        each delete; first put back what a crashed writer left uncommitted and this write does not touch."""
        pk, generation = course_pk(tenant_id, course_id), committed + 1
        written = {item.sk for item in puts} | set(deletes)
        for item in raw:
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
            if put.sk.startswith(USER_PREFIX):
                # Which courses hold a user, for a live user event (written when the user's row changes).
                user_id = put.sk.removeprefix(USER_PREFIX)
                batch.put_item(Item={"pk": tenant_pk(tenant_id), "sk": member_sk(user_id, course_id)})
        for sk in deletes:
            before = current.get(sk)
            if before is not None:  # a tombstone until the commit, then removed
                batch.put_item(
                    Item={"pk": pk, "sk": sk, "data": before.data, "content_hash": before.content_hash,
                          "gen": generation, "deleted": True, **_previous(before)}
                )  # fmt: skip

    def _commit_course(
        self,
        tenant_id: str,
        course_id: int,
        holder: str,
        generation: int,
        *,
        digest: str,
        course: StoredItem | None,
        feed_changes: int,
    ) -> None:
        """Set the committed generation (and the course's own data, and when it changed) and release the
        lease, in one update; with feed changes, in one transaction with their feed entry."""
        sets = "gen = :gen, roster_digest = :digest, synced_at = :now" + (
            ", #data = :data, content_hash = :hash" if course is not None else ""
        )
        values: dict[str, Any] = {
            ":gen": generation,
            ":digest": digest,
            ":holder": holder,
            ":now": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if course is not None:
            values |= {":data": course.data, ":hash": course.content_hash}
        update: dict[str, Any] = {
            "Key": _course_key(tenant_id, course_id),
            "UpdateExpression": f"SET {sets} REMOVE lease_holder, lease_until",
            "ConditionExpression": "lease_holder = :holder",
            "ExpressionAttributeValues": values,
            **({"ExpressionAttributeNames": {"#data": "data"}} if course is not None else {}),
        }
        lease_lost = f"course {course_id}: the write lease ran out before the commit"
        if feed_changes:
            try:
                self._commit_with_feed_entry(
                    tenant_id, course_id, generation, feed_changes, {"TableName": self._table.name, **update}
                )
            except FeedCommitConflictError as error:
                raise CourseWriteConflictError(lease_lost) from error
            except FeedContentionError as error:
                raise CourseWriteConflictError(str(error)) from error
            return
        try:
            self._table.update_item(**update)
        except ClientError as error:
            if is_conditional_failure(error):
                raise CourseWriteConflictError(lease_lost) from error
            raise

    def _remove_tombstones(self, tenant_id: str, course_id: int, generation: int, deletes: list[str]) -> None:
        pk = course_pk(tenant_id, course_id)
        for sk in deletes:
            try:
                self._table.delete_item(
                    Key={"pk": pk, "sk": sk},
                    ConditionExpression="gen = :gen AND attribute_exists(deleted)",
                    ExpressionAttributeValues={":gen": generation},
                )
            except ClientError as error:
                if not is_conditional_failure(error):  # a later writer already rewrote it
                    raise
