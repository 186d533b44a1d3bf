"""The single DynamoDB table, one mixin per kind of record (its keys: store/keys.py)."""

from __future__ import annotations

from typing import Any

import boto3

from rostersync.store.admins import AdminRecords
from rostersync.store.holds import HoldRecords
from rostersync.store.leases import LeaseRecords
from rostersync.store.live_events import LiveEventRecords
from rostersync.store.oauth_states import OAuthStateRecords
from rostersync.store.rosters import RosterRecords
from rostersync.store.runs import RunRecords
from rostersync.store.tenants import TenantRecords


class RosterTable(
    TenantRecords,
    AdminRecords,
    LeaseRecords,
    OAuthStateRecords,
    RunRecords,
    HoldRecords,
    LiveEventRecords,
    RosterRecords,
):
    def __init__(self, table_name: str, resource: Any = None) -> None:
        self._table = (resource or boto3.resource("dynamodb")).Table(table_name)
