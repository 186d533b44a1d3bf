"""The single DynamoDB table, one mixin per kind of record (its keys: store/keys.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3

from rostersync.models import HeldSync, Tenant
from rostersync.store.admins import AdminRecords
from rostersync.store.clients import ApiClientRecords
from rostersync.store.feed import DEFAULT_FEED_RETENTION_DAYS
from rostersync.store.holds import HoldRecords, hold_from_item
from rostersync.store.keys import FEED_SK, TENANT_SK, course_sk, hold_pk, tenant_pk
from rostersync.store.leases import LeaseRecords
from rostersync.store.live_events import LiveEventRecords
from rostersync.store.oauth_states import OAuthStateRecords
from rostersync.store.rosters import CourseRow, RosterRecords, course_row_from_item
from rostersync.store.runs import RunRecords
from rostersync.store.tenants import TenantRecords, tenant_from_item

# The most keys DynamoDB reads in one BatchGetItem.
BATCH_GET_LIMIT = 100

CourseKey = tuple[str, int]


@dataclass(frozen=True)
class CoursesView:
    """What syncing some courses starts from: their tenants, their own rows and their current holds
    (a key is missing where no such item exists)."""

    tenants: dict[str, Tenant] = field(default_factory=dict)
    rows: dict[CourseKey, CourseRow] = field(default_factory=dict)
    holds: dict[CourseKey, HeldSync] = field(default_factory=dict)


class RosterTable(
    TenantRecords,
    AdminRecords,
    LeaseRecords,
    OAuthStateRecords,
    RunRecords,
    HoldRecords,
    LiveEventRecords,
    RosterRecords,
    ApiClientRecords,
):
    def __init__(
        self, table_name: str, resource: Any = None, feed_retention_days: int = DEFAULT_FEED_RETENTION_DAYS
    ) -> None:
        self._resource = resource or boto3.resource("dynamodb")
        self._table = self._resource.Table(table_name)
        self._feed_retention_seconds = feed_retention_days * 86400
        self._feed_heads = {}

    def read_courses(self, courses: Iterable[CourseKey]) -> CoursesView:
        """The tenants, course rows and holds of these (tenant id, course id) pairs, read consistently
        in one request per hundred keys rather than one item at a time; the tenants' feed counters come
        with them, for the courses' commits to start from."""
        wanted: dict[tuple[str, str], tuple[str, str, int]] = {}
        for tenant_id, course_id in courses:
            wanted[tenant_pk(tenant_id), TENANT_SK] = ("tenant", tenant_id, 0)
            wanted[tenant_pk(tenant_id), FEED_SK] = ("feed", tenant_id, 0)
            wanted[tenant_pk(tenant_id), course_sk(course_id)] = ("row", tenant_id, course_id)
            wanted[hold_pk(tenant_id), course_sk(course_id)] = ("hold", tenant_id, course_id)
        view = CoursesView()
        feed_heads_seen = set()
        for item in self._batch_get([{"pk": pk, "sk": sk} for pk, sk in wanted]):
            kind, tenant_id, course_id = wanted[item["pk"], item["sk"]]
            if kind == "tenant":
                view.tenants[tenant_id] = tenant_from_item(item)
            elif kind == "feed":
                feed_heads_seen.add(tenant_id)
                self.remember_feed_head(tenant_id, int(item.get("seq", 0)))
            elif kind == "row":
                view.rows[tenant_id, course_id] = course_row_from_item(item)
            else:
                view.holds[tenant_id, course_id] = hold_from_item(item)
        for tenant_id in view.tenants.keys() - feed_heads_seen:  # no counter yet: its first commit makes it
            self.remember_feed_head(tenant_id, 0)
        return view

    def _batch_get(self, keys: list[dict[str, str]]) -> Iterator[dict[str, Any]]:
        name = self._table.name
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                name: {"Keys": keys[start : start + BATCH_GET_LIMIT], "ConsistentRead": True}
            }
            while request:  # DynamoDB may leave some keys for another request
                response = self._resource.batch_get_item(RequestItems=request)
                yield from response.get("Responses", {}).get(name, [])
                request = response.get("UnprocessedKeys") or {}
