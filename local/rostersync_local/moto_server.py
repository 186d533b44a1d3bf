"""moto's server for the local stack, patched where moto 5.2.5 spends time that AWS would not.

- `Table.query` walks every item of the table to collect one partition's items, so a Query costs
  O(table) where DynamoDB's costs O(partition). Rosters are read per course, so a sync slowed down as the
  table grew (`make bench`: 0.38 s per course at 1k enrollments, 0.78 s at 5k). The patch hands moto's
  own query code the asked partition only.
- Every request finds its service by listing moto's package directory (`list_of_moto_modules`, about
  150 `isdir` calls) and matching URL patterns, under one lock; py-spy showed a third of the server's
  time there during a 20k-enrollment sync. The patch remembers each host's answer.
- A Query on an index compares every item of the table by typed value; at 20k enrollments the
  tenants index (read by each live event) took seconds per query. The patch hands it only the items
  that carry the index's hash attributes (the only ones moto could match).
- werkzeug's line per request is turned off (about 8% of the server's time under a sync).

Same answers as moto (tests/unit/test_moto_server.py), AWS's cost shape.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from moto import backends
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

_asked = threading.local()  # moto's server answers on several threads
_every_item = Table.all_items
_query = Table.query


def _items_of_the_asked_partition(self: Table) -> list[Any]:
    asked: tuple[Table, list[Any]] | None = getattr(_asked, "partition", None)
    if asked is not None and asked[0] is self:
        return asked[1]  # already a copy, made when the query began
    return _every_item(self)


def _items_under(stored: Any) -> list[Any]:
    """The items moto keeps under one hash key: a dict by range key, or the item itself.

    A copy: another request's thread may add items while this one reads (list() of a dict view runs
    under the GIL in one step, where a Python loop over the view can raise mid-way)."""
    return list(stored.values()) if isinstance(stored, dict) else [stored]


def _indexed_items(self: Table, index: Any) -> list[Any]:
    """The items an index holds: those with every hash attribute of the index (a dict lookup each,
    where moto compares typed values item by item)."""
    names = [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"]
    # Unsorted: moto sorts what an index query finds (moto's all_items sorts the whole table first).
    return [
        item
        for stored in list(self.items.values())
        for item in _items_under(stored)
        if all(name in item.attrs for name in names)
    ]


def _query_one_partition(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    partition: list[Any]
    if index_name is not None:
        index = next((index for index in self.all_indexes() if index.name == index_name), None)
        if index is None:
            return _query(self, hash_key, *args, **kwargs)  # moto's own error for an unknown index
        partition = _indexed_items(self, index)
    elif hash_key is None:
        return _query(self, hash_key, *args, **kwargs)
    else:
        stored = self.items.get(hash_key)
        partition = [] if stored is None else _items_under(stored)
    _asked.partition = (self, partition)
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        _asked.partition = None


def index_queries_by_partition() -> None:
    Table.all_items = _items_of_the_asked_partition  # type: ignore[method-assign]
    Table.query = _query_one_partition  # type: ignore[method-assign]


_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_backends_by_host: dict[str | None, Any] = {}


def _remembered_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    # Called under the dispatcher's lock; the answer depends on the host only.
    if host not in _backends_by_host:
        _backends_by_host[host] = _backend_for_host(self, host)
    return _backends_by_host[host]


def remember_backends_by_host() -> None:
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    DomainDispatcherApplication.get_backend_for_host = _remembered_backend_for_host  # type: ignore[method-assign]


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    index_queries_by_partition()
    remember_backends_by_host()
    main()
