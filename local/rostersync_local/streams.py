"""DynamoDB stream event sources as Lambda runs them, where moto has the stream but no poller: read the
shard, keep the records the trigger's filter patterns match, invoke with a batch, retry from the first
failed record, and after the retries send what failed to the on-failure queue."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rostersync_local.functions import Invocation
from rostersync_local.template import REGION, StreamTriggerSpec

logger = logging.getLogger("rostersync_local.streams")
READ_LIMIT = 1000


def matches(pattern: Any, value: Any) -> bool:
    """EventBridge pattern matching, the part event filters here use: nested keys, lists of allowed
    values, and `prefix`."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and matches(inner, value[key]) for key, inner in pattern.items()
        )
    if not isinstance(pattern, list):
        raise ValueError(f"a filter pattern's leaf must be a list, got {pattern!r}")
    for allowed in pattern:
        if isinstance(allowed, dict):
            if set(allowed) != {"prefix"}:
                raise ValueError(f"the local stream poller does not know the filter {allowed!r}")
            if isinstance(value, str) and value.startswith(allowed["prefix"]):
                return True
        elif value == allowed:
            return True
    return False


def _plain(value: Any) -> Any:
    """A typed attribute value as Lambda's JSON has it (bytes in base64)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(inner) for inner in value]
    return value


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A stream record in the shape Lambda hands it to a function."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if created is not None and hasattr(created, "timestamp"):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": _plain(change),
        "eventSourceARN": stream_arn,
    }


class StreamPoller:
    def __init__(
        self,
        trigger: StreamTriggerSpec,
        *,
        stream_arn: str,
        streams: Any,
        sqs: Any,
        on_failure_queue_url: str | None,
        invoke: Callable[[str, Any], Invocation],
        retry_delay_seconds: float = 1.0,
        poll_seconds: float = 0.5,
    ) -> None:
        self.trigger = trigger
        self._stream_arn = stream_arn
        self._streams = streams
        self._sqs = sqs
        self._on_failure_queue_url = on_failure_queue_url
        self._invoke = invoke
        self._retry_delay = retry_delay_seconds
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stream-{trigger.logical_id}", daemon=True)
        self._iterators: dict[str, str] = {}
        self._shard_ids: list[str] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.poll_once() == 0:
                    self._stop.wait(self._poll_seconds)
            except Exception:  # keep polling, as Lambda's pollers do, but say why
                logger.exception("stream poller %s failed", self.trigger.logical_id)
                self._stop.wait(1)

    def poll_once(self) -> int:
        """Read what each shard holds now, deliver the matching records; how many were read."""
        read = 0
        if not self._iterators:  # moto's stream keeps one shard: listed once, then followed
            shards = self._streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]["Shards"]
            self._shard_ids = [shard["ShardId"] for shard in shards]
        for shard_id in self._shard_ids:
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._streams.get_shard_iterator(
                    StreamArn=self._stream_arn,
                    ShardId=shard_id,
                    ShardIteratorType=self.trigger.starting_position,
                )["ShardIterator"]
            response = self._streams.get_records(ShardIterator=self._iterators[shard_id], Limit=READ_LIMIT)
            self._iterators[shard_id] = response["NextShardIterator"]
            records = [lambda_record(record, self._stream_arn) for record in response.get("Records", [])]
            read += len(records)
            wanted = [
                record
                for record in records
                if not self.trigger.filter_patterns
                or any(matches(pattern, record) for pattern in self.trigger.filter_patterns)
            ]
            for start in range(0, len(wanted), self.trigger.batch_size):
                self._deliver(wanted[start : start + self.trigger.batch_size])
        return read

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        attempts = 0
        while batch and not self._stop.is_set():
            invocation = self._invoke(self.trigger.function, {"Records": batch})
            if invocation.error is None:
                failed = []
                if self.trigger.report_batch_item_failures and isinstance(invocation.payload, dict):
                    failed = [
                        item["itemIdentifier"] for item in invocation.payload.get("batchItemFailures", [])
                    ]
                if not failed:
                    return
                # Lambda checkpoints before the first failure and retries from it.
                numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
                batch = batch[min(numbers.index(number) for number in failed if number in numbers) :]
            else:
                logger.warning("%s failed: %s", self.trigger.function, invocation.error.get("errorMessage"))
            attempts += 1
            if 0 <= self.trigger.maximum_retry_attempts < attempts:
                self._give_up(batch)
                return
            time.sleep(self._retry_delay)

    def _give_up(self, batch: list[dict[str, Any]]) -> None:
        logger.error("%s: %d stream records failed after the retries", self.trigger.function, len(batch))
        if self._on_failure_queue_url is None:
            return
        numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        self._sqs.send_message(
            QueueUrl=self._on_failure_queue_url,
            MessageBody=json.dumps(
                {
                    "requestContext": {
                        "condition": "RetryAttemptsExhausted",
                        "functionArn": self.trigger.function,
                    },
                    "DDBStreamBatchInfo": {
                        "streamArn": self._stream_arn,
                        "startSequenceNumber": numbers[0],
                        "endSequenceNumber": numbers[-1],
                        "batchSize": len(batch),
                    },
                }
            ),
        )
