"""The tenant's change feed: one entry per course commit, in the commit's own transaction.

A commit's changes are written first, under the course's next generation, where no reader looks; the
commit is then one transaction of the course row's generation update (and lease release), the tenant's
feed counter moved from the value read to the next, and the feed entry at that sequence naming the
course, the generation and how many changes it holds. So the feed is gap-free and ordered per tenant, a
reader sees a roster change exactly when its feed entry exists, and a crashed writer's changes stay
unreachable (the next writer of that generation writes over them; its entry's count bounds the read).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from rostersync.store.dynamo import TableRecords
from rostersync.store.keys import (
    FEED_SK,
    change_sk,
    changes_pk,
    feed_entry_sequence,
    feed_entry_sk,
    feed_pk,
    tenant_pk,
)

DEFAULT_FEED_RETENTION_DAYS = 30
# Commits of one tenant move one counter: a lost race reads it again (many workers commit at once).
FEED_COMMIT_ATTEMPTS = 60


@dataclass(frozen=True)
class FeedChange:
    """One change as the feed holds it: its type (enrollment.added, ...) and its data as JSON text."""

    type: str
    data: str


@dataclass(frozen=True)
class FeedEntry:
    """A course commit in the feed."""

    sequence: int
    course_id: int
    generation: int
    count: int
    occurred_at: str


@dataclass(frozen=True)
class StoredChange:
    entry: FeedEntry
    index: int
    type: str
    data: str


class FeedCommitConflictError(Exception):
    """The commit's own condition failed (the course's write lease is no longer this writer's)."""


class FeedContentionError(Exception):
    """Other commits of the tenant kept winning the feed counter; nothing was committed."""


def feed_entry_of(item: dict[str, Any]) -> FeedEntry:
    return FeedEntry(
        sequence=feed_entry_sequence(item["sk"]),
        course_id=int(item["course_id"]),
        generation=int(item["gen"]),
        count=int(item["count"]),
        occurred_at=str(item["occurred_at"]),
    )


def _cancellation_reasons(error: ClientError) -> list[dict[str, Any]]:
    """A refused transaction's reason per item, in the transaction's order."""
    return list(error.response.get("CancellationReasons") or [])


def _cancellation_codes(error: ClientError) -> list[str]:
    return [str(reason.get("Code", "None")) for reason in _cancellation_reasons(error)]


def _counter_refused_with(error: ClientError) -> int | None:
    """The feed counter's value a commit's transaction was refused with (its second item), if given."""
    reasons = _cancellation_reasons(error)
    if len(reasons) < 2 or reasons[1].get("Code") != "ConditionalCheckFailed":
        return None
    seq = (reasons[1].get("Item") or {}).get("seq", {}).get("N")
    return int(seq) if seq is not None else None


class FeedRecords(TableRecords):
    _feed_retention_seconds: int = DEFAULT_FEED_RETENTION_DAYS * 86400
    # The last value of each tenant's feed counter this table saw (a hint; the commit's condition checks it).
    _feed_heads: dict[str, int]

    # -- writing -------------------------------------------------------------------------------
    def _put_changes(
        self, batch: Any, tenant_id: str, course_id: int, generation: int, changes: Sequence[FeedChange]
    ) -> None:
        expires_at = int(time.time()) + self._feed_retention_seconds
        pk = changes_pk(tenant_id, course_id)
        for index, change in enumerate(changes):
            batch.put_item(
                Item={"pk": pk, "sk": change_sk(generation, index), "type": change.type,
                      "data": change.data, "expires_at": expires_at}
            )  # fmt: skip

    def _commit_with_feed_entry(
        self, tenant_id: str, course_id: int, generation: int, count: int, course_update: dict[str, Any]
    ) -> None:
        """Apply `course_update` (an Update of a transaction, with its condition) together with the next
        feed entry; retried while other commits of the tenant win the counter.

        The counter's value comes from what this table last saw of it (the batch's first read, its own
        last commit, the value a lost commit was refused with) when it has one, so a batch's commits cost
        no read each; a stale value only costs the failed transaction, which answers with the counter's
        current value."""
        counter_key = {"pk": tenant_pk(tenant_id), "sk": FEED_SK}
        table_name = self._table.name
        current_is_fresh = False  # read or refused just now: losing with it means contention
        for attempt in range(FEED_COMMIT_ATTEMPTS):
            known = self._feed_heads.pop(tenant_id, None)
            if known is None:
                current, current_is_fresh = self.feed_head(tenant_id), True
            else:
                current = known
            now = time.time()
            counter_update: dict[str, Any] = {
                "TableName": table_name,
                "Key": counter_key,
                "UpdateExpression": "SET seq = :next",
                "ConditionExpression": "attribute_not_exists(seq)" if current == 0 else "seq = :seen",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                "ExpressionAttributeValues": {
                    ":next": current + 1,
                    **({":seen": current} if current else {}),
                },
            }
            entry = {
                "TableName": table_name,
                "Item": {
                    "pk": feed_pk(tenant_id),
                    "sk": feed_entry_sk(current + 1),
                    "course_id": course_id,
                    "gen": generation,
                    "count": count,
                    "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                    "expires_at": int(now) + self._feed_retention_seconds,
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
            try:
                self._table.meta.client.transact_write_items(
                    TransactItems=[{"Update": course_update}, {"Update": counter_update}, {"Put": entry}]
                )
                self._feed_heads[tenant_id] = current + 1
                return
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                codes = _cancellation_codes(error)
                if codes and codes[0] == "ConditionalCheckFailed":
                    raise FeedCommitConflictError(str(error)) from error
                refused_with = _counter_refused_with(error)
            if current_is_fresh:  # a current value lost to another commit: back off before the next
                time.sleep(random.uniform(0, min(0.05 * (attempt + 1), 0.5)))  # noqa: S311 - jitter only
            if refused_with is not None:  # the counter's value now: the next attempt needs no read
                self._feed_heads[tenant_id] = refused_with
            current_is_fresh = refused_with is not None
        raise FeedContentionError(f"the feed counter of tenant {tenant_id} stayed contended")

    def remember_feed_head(self, tenant_id: str, sequence: int) -> None:
        """What a batch read of the tenant's counter saw: the next commit starts from it."""
        self._feed_heads[tenant_id] = sequence

    # -- reading -------------------------------------------------------------------------------
    def feed_head(self, tenant_id: str) -> int:
        """The last committed sequence of the tenant's feed (0 before the first commit)."""
        item = self._table.get_item(
            Key={"pk": tenant_pk(tenant_id), "sk": FEED_SK}, ConsistentRead=True, ProjectionExpression="seq"
        ).get("Item")
        return int((item or {}).get("seq", 0))

    def feed_entry(self, tenant_id: str, sequence: int) -> FeedEntry | None:
        item = self._table.get_item(
            Key={"pk": feed_pk(tenant_id), "sk": feed_entry_sk(sequence)}, ConsistentRead=True
        ).get("Item")
        if item is None or int(item.get("expires_at", 0)) <= time.time():
            return None
        return feed_entry_of(item)

    def feed_entries(self, tenant_id: str, from_sequence: int, page_size: int) -> Iterator[FeedEntry]:
        """Retained feed entries from `from_sequence` on, in order (lazily, `page_size` a query)."""
        now = int(time.time())
        for item in self._query(
            KeyConditionExpression=Key("pk").eq(feed_pk(tenant_id))
            & Key("sk").gte(feed_entry_sk(from_sequence)),
            ConsistentRead=True,
            Limit=page_size,
        ):
            if int(item.get("expires_at", 0)) > now:  # TTL deletes late; an expired entry is gone already
                yield feed_entry_of(item)

    def entry_changes(self, tenant_id: str, entry: FeedEntry, first: int, limit: int) -> list[StoredChange]:
        """Changes `first` .. of a feed entry, at most `limit`."""
        last = min(entry.count, first + limit) - 1
        if last < first:
            return []
        items = self._query(
            KeyConditionExpression=Key("pk").eq(changes_pk(tenant_id, entry.course_id))
            & Key("sk").between(change_sk(entry.generation, first), change_sk(entry.generation, last)),
            ConsistentRead=True,
        )
        return [
            StoredChange(entry, int(item["sk"].rsplit("#", 1)[1]), str(item["type"]), str(item["data"]))
            for item in items
        ]
