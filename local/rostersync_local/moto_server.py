"""moto's server for the local stack, patched where moto 5.2.5 spends time that AWS would not, where
it lacks a call the CLI makes, and where it hands out a queue's messages in another order than AWS.

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
- `TransactWriteItems` deep-copies every table it names before writing, to roll back on a failed
  condition, and on failure puts the copies back: O(table) per transaction, and the restore undoes
  whatever other requests wrote meanwhile (the copy itself fails with "dictionary changed size" while
  they write). The patch checks every condition first and writes only when all hold, under a lock that
  serializes transactions, so nothing has to be rolled back.
- A conditional PutItem, UpdateItem or DeleteItem checks its condition and then writes, with nothing to
  stop another request's thread from writing the item in between: two workers claiming one assignment
  at once could both succeed, where DynamoDB lets one. The patch runs each item write, and each
  transaction, under one lock.

- A standard queue's SendMessage reads one attribute (ContentBasedDeduplication, FIFO only) through
  moto's whole attribute map, which counts the queue's messages three times (visible, delayed, in
  flight), and a receive asks that map for the retention period once per message it looks at: every
  send and receive costs O(queue). Through a sync, the example consumer's queue (nobody reads it on
  the local stack) grows by one message per roster change, so sends slowed down as it grew (py-spy, 5k
  enrollments: about a tenth of the server's time). The patch leaves the counts out during a send and
  reads the retention period directly.
- A stream's GetRecords, and DynamoDB's GetItem, BatchGetItem and Query, go through moto's generic
  response serializer, which walks the API model's shape for every attribute of every item (about
  0.25 ms a stream record): at 5k enrollments, with the feed publisher reading the table's stream,
  GetRecords alone was two fifths of the server's CPU (timed per action), and a 500-enrollment
  roster's Query four fifths of its read. The items are already in DynamoDB's wire format, so the
  patch answers with them as JSON, as moto's DynamoDB handler used to.
- Every request lists its response class's methods with `inspect.getmembers` to check that the action
  is one (moto's `method_names_from_class`), about 4% of the server's time under a sync (py-spy,
  sampling the thread that holds the GIL); the patch lists each class once.
- EventBridge builds a JSONPath parser (a yacc table) for each of a rule's input paths on every event
  it delivers, a third of PutEvents' time; the patch keeps each path's parsed expression.

- apigatewayv2's `GetAuthorizers` is not implemented (moto has GetAuthorizer by id only); `rostersync
  client add|remove` find the delivery API's authorizer by name in that list. The patch answers it from
  moto's own authorizers.

- A standard queue hands out its visible messages in send order and ignores `MessageGroupId`. On AWS,
  a standard queue whose messages carry a group id is a fair queue: once a group (for us a tenant)
  holds a disproportionate share of the messages in flight or of the consumers' recent time, the
  other groups' messages are served first. Without the patch, the local stack's fairness measurement
  (`python -m rostersync_local.fairness`) would show a small tenant stuck behind a large tenant's
  backlog, which AWS would not. The patch approximates AWS, with no threshold for what is noisy: a
  receive from a standard queue serves messages without a group id (each its own tenant, as on AWS)
  and those of groups with nothing in flight first, then the group with the fewest in flight (what
  this receive handed out counts), oldest first within a group, otherwise send order. A heap over
  the groups: O(n log n) per receive (moto's is O(n)). FIFO queues keep moto's order.

Same answers as moto (tests/unit/test_moto_server.py), AWS's cost shape, and a receive order closer to
AWS's.
"""

from __future__ import annotations

import base64
import functools
import heapq
import json
import logging
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jsonpath_ng.ext
import jsonpath_ng.ext.parser
import moto.core.utils
from moto import backends
from moto.apigatewayv2.responses import ApiGatewayV2Response
from moto.core import responses as moto_responses
from moto.core.responses import ActionResult
from moto.core.utils import unix_time
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main
from moto.sqs.models import Message, Queue, SQSBackend

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


# Held by every item write and transaction: DynamoDB checks a write's condition and writes atomically.
_item_writes = threading.RLock()
ITEM_WRITES = ("put_item", "update_item", "delete_item")
TRANSACTION_LIMIT = 100


def _transaction_key(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr is not None else [])
    return {name: op["Item"][name] for name in names}


def check_then_write(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """TransactWriteItems as DynamoDB does it: every condition holds and every write happens, or none."""
    if len(transact_items) > TRANSACTION_LIMIT:
        raise TooManyTransactionsException()
    with _item_writes:
        checked: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
        targets: set[tuple[str, str]] = set()
        for item in transact_items:
            if len(item) > 1:
                raise TransactWriteSingleOpException
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            key = _transaction_key(backend, op_type, op)
            target = (str(op["TableName"]), str(dict(sorted(key.items()))))
            if target in targets:
                raise MultipleTransactionsException()
            targets.add(target)
            current = backend.get_item(op["TableName"], key)
            condition = op.get("ConditionExpression")
            holds = condition is None or get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            ).expr(current)
            if holds:
                errors.append((None, None, None))
            else:
                old = (
                    current.to_json()["Attributes"]
                    if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
                    else None
                )
                errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
            checked.append((op_type, op, key))
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)
        for op_type, op, key in checked:  # the conditions held: write without checking them again
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                backend.put_item(op["TableName"], op["Item"])
            elif op_type == "Delete":
                backend.delete_item(op["TableName"], key)
            elif op_type == "Update":
                backend.update_item(
                    op["TableName"],
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names or {},
                    expression_attribute_values=values or {},
                )


def transactions_without_table_copies() -> None:
    DynamoDBBackend.transact_write_items = check_then_write  # type: ignore[method-assign, assignment]


def one_write_at_a_time(write: Callable[..., Any]) -> Callable[..., Any]:
    """`write` (a backend's put, update or delete of one item) under the lock every item write holds."""

    @functools.wraps(write)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _item_writes:
            return write(*args, **kwargs)

    return locked


def atomic_conditional_writes() -> None:
    for name in ITEM_WRITES:
        setattr(DynamoDBBackend, name, one_write_at_a_time(getattr(DynamoDBBackend, name)))


_sending = threading.local()
_send_message = SQSBackend.send_message
_MESSAGE_COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)


def _send_without_counting(self: SQSBackend, *args: Any, **kwargs: Any) -> Message:
    _sending.active = True
    try:
        return _send_message(self, *args, **kwargs)
    finally:
        _sending.active = False


def _count_unless_sending(count: property) -> property:
    def counted(queue: Queue) -> int:
        # SendMessage never reads a count: it reads the map they are part of for another attribute.
        return 0 if getattr(_sending, "active", False) else int(count.fget(queue))  # type: ignore[misc]

    return property(counted)


def _within_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
    retention_seconds = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
    return retention_seconds + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]


def sends_without_counting_the_queue() -> None:
    for name in _MESSAGE_COUNTS:
        setattr(Queue, name, _count_unless_sending(getattr(Queue, name)))
    SQSBackend.send_message = _send_without_counting  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = _within_retention_period  # type: ignore[method-assign]


def parse_each_event_path_once() -> None:
    # moto imports `parse` from the module at each event, so the cached one is what it finds.
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parser.parse)  # type: ignore[attr-defined]


def list_each_response_class_once() -> None:
    moto_responses.method_names_from_class = functools.cache(moto.core.utils.method_names_from_class)  # type: ignore[attr-defined]


def _wire_value(value: Any) -> Any:
    """What JSON cannot hold, as the JSON protocol sends it: binary in base64, times in epoch seconds."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # moto's clock is UTC
        return int(aware.timestamp()) + aware.microsecond // 1000 / 1000  # milliseconds, truncated
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _answered_as_json(action: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(action)
    def answer(self: Any) -> Any:
        result = action(self)
        if type(result) not in (ActionResult, DynamoResult):  # an error or a paginated result: moto's own way
            return result
        return json.dumps(result.result, default=_wire_value)

    return answer


# The calls whose answers are items, already in DynamoDB's wire format.
ITEM_READS = {
    DynamoDBStreamsHandler: ("get_records",),
    DynamoHandler: ("get_item", "batch_get_item", "query"),
}


def item_reads_as_json() -> None:
    for handler, actions in ITEM_READS.items():
        for action in actions:
            setattr(handler, action, _answered_as_json(getattr(handler, action)))


# moto's property: the messages visible and not delayed, in send order
_visible_in_send_order: Callable[[Queue], list[Message]] = vars(Queue)["messages"].fget


def _fair_queue_order(self: Queue) -> list[Message]:
    """The visible messages in the order a receive takes them: a standard queue's as a fair queue
    serves them (fewest in flight first), a FIFO queue's as moto keeps them."""
    visible = _visible_in_send_order(self)
    if self.fifo_queue:
        return visible
    # A copy: other requests' threads add to the set while this one counts.
    pending = list(self.pending_messages)
    in_flight = Counter(m.group_id for m in pending if m.group_id is not None and not m.visible)
    waiting: defaultdict[str, deque[int]] = defaultdict(deque)  # each group's messages by send position
    next_up: list[tuple[int, int, str | None]] = []  # (in flight, send position, group)
    for position, message in enumerate(visible):
        if message.group_id is None:  # a tenant of its own, with nothing in flight
            next_up.append((0, position, None))
        else:
            waiting[message.group_id].append(position)
    next_up += [(in_flight[group], positions.popleft(), group) for group, positions in waiting.items()]
    heapq.heapify(next_up)
    ordered: list[Message] = []
    while next_up:
        taken, position, group = heapq.heappop(next_up)
        ordered.append(visible[position])
        if group is not None and waiting[group]:
            heapq.heappush(next_up, (taken + 1, waiting[group].popleft(), group))
    return ordered


def fair_queue_receive_order() -> None:
    Queue.messages = property(_fair_queue_order)  # type: ignore[method-assign, assignment]


def _get_authorizers(self: ApiGatewayV2Response) -> tuple[int, dict[str, str], str]:
    api = self.apigatewayv2_backend.get_api(api_id=self.path.split("/")[-2])
    return 200, {}, json.dumps({"items": [authorizer.to_json() for authorizer in api.authorizers.values()]})


def list_authorizers() -> None:
    ApiGatewayV2Response.get_authorizers = _get_authorizers  # type: ignore[attr-defined]


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    index_queries_by_partition()
    remember_backends_by_host()
    transactions_without_table_copies()
    atomic_conditional_writes()
    list_authorizers()
    sends_without_counting_the_queue()
    parse_each_event_path_once()
    item_reads_as_json()
    fair_queue_receive_order()
    list_each_response_class_once()
    main()
