"""The single DynamoDB table, one mixin per kind of record (its keys: store/keys.py)."""

from __future__ import annotations

from typing import Any

import boto3

from rostersync.store.clients import ApiClientRecords
from rostersync.store.feed import DEFAULT_FEED_RETENTION_DAYS
from rostersync.store.holds import HoldRecords
from rostersync.store.leases import LeaseRecords
from rostersync.store.live_events import LiveEventRecords
from rostersync.store.oauth_states import OAuthStateRecords
from rostersync.store.rosters import RosterRecords
from rostersync.store.runs import RunRecords
from rostersync.store.tenants import TenantRecords


class RosterTable(
    TenantRecords,
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
        self._table = (resource or boto3.resource("dynamodb")).Table(table_name)
        self._feed_retention_seconds = feed_retention_days * 86400
