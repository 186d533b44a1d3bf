"""The local runner's DynamoDB stream event source: filter patterns, batches, retries from the first
failed record, the on-failure queue (a narrow unit test: the stream and the queue are stand-ins)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rostersync_local.functions import Invocation
from rostersync_local.streams import StreamPoller, matches
from rostersync_local.template import StreamTriggerSpec

FEED_ONLY = {"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": [{"prefix": "SEQ#"}]}}}}


def record(number: int, sk: str, event_name: str = "INSERT") -> dict[str, Any]:
    keys = {"pk": {"S": "T#t1#FEED"}, "sk": {"S": sk}}
    return {
        "eventID": str(number),
        "eventName": event_name,
        "dynamodb": {"Keys": keys, "NewImage": keys, "SequenceNumber": f"{number:05d}", "SizeBytes": 10},
    }


class Shard:
    """describe_stream / get_shard_iterator / get_records over a list of records, read once."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "s1"}]}}

    def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": "0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        start = int(ShardIterator)
        return {"Records": self.records[start : start + Limit], "NextShardIterator": str(len(self.records))}


class Queue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:
        self.sent.append(json.loads(MessageBody))


def poller(records: list[dict[str, Any]], invoke: Any, retries: int = 2) -> tuple[StreamPoller, Queue]:
    trigger = StreamTriggerSpec(
        logical_id="Feed", table="RosterTable", function="Publisher", batch_size=2,
        starting_position="TRIM_HORIZON", report_batch_item_failures=True, maximum_retry_attempts=retries,
        filter_patterns=(FEED_ONLY,), on_failure_queue="Dlq",
    )  # fmt: skip
    queue = Queue()
    made = StreamPoller(
        trigger, stream_arn="arn:stream", streams=Shard(records), sqs=queue, on_failure_queue_url="dlq",
        invoke=invoke, retry_delay_seconds=0,
    )  # fmt: skip
    return made, queue


def test_patterns_match_nested_keys_lists_and_prefixes() -> None:
    assert matches(FEED_ONLY, record(1, "SEQ#000000000001"))
    assert not matches(FEED_ONLY, record(1, "ENROLLMENT#1"))
    assert not matches(FEED_ONLY, record(1, "SEQ#000000000001", "MODIFY"))
    with pytest.raises(ValueError, match="does not know the filter"):
        matches({"eventName": [{"anything-but": "REMOVE"}]}, record(1, "SEQ#1"))


def test_only_matching_records_are_delivered_in_batches_and_a_failure_retries_from_itself() -> None:
    records = [record(1, "SEQ#1"), record(2, "ENROLLMENT#7"), record(3, "SEQ#2"), record(4, "SEQ#3")]
    batches: list[list[str]] = []

    def invoke(function: str, event: Any) -> Invocation:
        numbers = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        batches.append(numbers)
        failed = [{"itemIdentifier": "00003"}] if len(batches) == 1 else []
        return Invocation(payload={"batchItemFailures": failed})

    made, queue = poller(records, invoke)
    assert made.poll_once() == 4
    # SEQ#1 and SEQ#2 first; SEQ#2 failed, so it comes again (SEQ#1 is checkpointed); then SEQ#3.
    assert batches == [["00001", "00003"], ["00003"], ["00004"]]
    assert queue.sent == []


def test_a_batch_that_keeps_failing_goes_to_the_on_failure_queue_after_the_retries() -> None:
    calls: list[int] = []

    def invoke(function: str, event: Any) -> Invocation:
        calls.append(len(event["Records"]))
        return Invocation(error={"errorMessage": "bus unreachable"})

    made, queue = poller([record(1, "SEQ#1")], invoke, retries=2)
    made.poll_once()
    assert calls == [1, 1, 1]  # the first attempt and two retries
    assert [message["DDBStreamBatchInfo"]["startSequenceNumber"] for message in queue.sent] == ["00001"]
