"""DynamoDB plumbing the table's record kinds share: paging, conditional failures, item shaping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

KEY_ATTRIBUTES = frozenset({"pk", "sk", "gsi1pk", "gsi1sk"})


def plain_client() -> Any:
    """A low-level DynamoDB client (items in DynamoDB's typed JSON, as Powertools' idempotency layer writes
    them; the table resource's own client converts Python values) from boto3's default session, where
    RosterTable's resource is made: DynamoDB's model is loaded once for both at the cold start, where the
    layer, left to itself, would make a session of its own and load it again."""
    return boto3.client("dynamodb")


def is_conditional_failure(error: ClientError) -> bool:
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


def strip_keys(item: dict[str, Any]) -> dict[str, Any]:
    """An item's own attributes, without the table's key attributes."""
    return {key: value for key, value in item.items() if key not in KEY_ATTRIBUTES}


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def sortable_time(moment: datetime) -> str:
    """A UTC time as text that sorts as the time does (compared inside condition expressions)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class TableRecords:
    """The base of each record kind's mixin: the table they share, and a paged query over it."""

    _table: Any

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return query_all(self._table, **kwargs)
