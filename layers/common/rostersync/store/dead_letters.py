"""Dead-letter queues: look at what failed for good, move it back once the cause is fixed, or drop it.

Works the same against AWS and moto (moto lacks SQS's StartMessageMoveTask, so messages are moved
one batch at a time: send to the source queue, then delete from the dead-letter queue).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
from pydantic import BaseModel

SQS_BATCH_LIMIT = 10


class DeadLetter(BaseModel):
    """A failed message as SQS keeps it. SQS does not keep the error: the consuming function logged it.

    The tenant, run, course and batch are read from the body (a failed message may be no JSON at all,
    or untrusted text: they are only shown, never acted on)."""

    message_id: str
    body: str
    receive_count: int
    first_sent_at: datetime
    tenant_id: str | None = None
    run_id: str | None = None
    course_id: int | None = None
    batch_id: str | None = None


def _what_it_names(body: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    course = parsed.get("course")
    course_id = course.get("id") if isinstance(course, dict) else parsed.get("course_id")
    named: dict[str, Any] = {
        name: parsed.get(name) if isinstance(parsed.get(name), str) else None
        for name in ("tenant_id", "run_id", "batch_id")
    }
    named["course_id"] = course_id if isinstance(course_id, int) and not isinstance(course_id, bool) else None
    return named


class DeadLetterQueues:
    def __init__(self, client: Any = None) -> None:
        self._sqs = client or boto3.client("sqs")

    def peek(self, queue_url: str, limit: int = 100) -> list[DeadLetter]:
        """Up to `limit` messages, left in the queue (hidden while they are read, then released)."""
        seen: dict[str, DeadLetter] = {}
        handles: list[str] = []
        while len(seen) < limit:
            messages = self._receive(queue_url, visibility_seconds=30)
            fresh = [message for message in messages if message["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                handles.append(message["ReceiptHandle"])
                attributes = message.get("Attributes", {})
                seen[message["MessageId"]] = DeadLetter(
                    message_id=message["MessageId"],
                    body=message["Body"],
                    receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
                    first_sent_at=datetime.fromtimestamp(int(attributes.get("SentTimestamp", 0)) / 1000, UTC),
                    **_what_it_names(message["Body"]),
                )
        self._release(queue_url, handles)
        return list(seen.values())[:limit]

    def count(self, queue_url: str) -> int:
        """About how many messages the queue holds (SQS's approximate count, visible and in flight)."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

    def delete(self, queue_url: str, message_id: str) -> bool:
        """Delete one message by its id; False if it is not (or no longer) in the queue."""
        handles: list[str] = []
        seen: set[str] = set()
        found = False
        while not found and (messages := self._receive(queue_url, visibility_seconds=30)):
            fresh = [message for message in messages if message["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                if message["MessageId"] == message_id:
                    self._sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                    found = True
                else:
                    handles.append(message["ReceiptHandle"])
        self._release(queue_url, handles)
        return found

    def purge(self, queue_url: str) -> int:
        """Delete every message; returns about how many there were. SQS allows one purge a minute."""
        held = self.count(queue_url)
        self._sqs.purge_queue(QueueUrl=queue_url)
        return held

    def redrive(self, dead_letter_url: str, source_url: str) -> int:
        """Move every message back to its source queue; returns how many moved."""
        moved = 0
        while messages := self._receive(dead_letter_url, visibility_seconds=60):
            entries = []
            for index, message in enumerate(messages):
                entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
                group = message.get("Attributes", {}).get("MessageGroupId")
                if group:
                    entry["MessageGroupId"] = group
                entries.append(entry)
            sent = self._sqs.send_message_batch(QueueUrl=source_url, Entries=entries).get("Successful", [])
            sent_ids = {item["Id"] for item in sent}
            done = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(messages)
                if str(index) in sent_ids
            ]
            if done:
                self._sqs.delete_message_batch(QueueUrl=dead_letter_url, Entries=done)
            moved += len(done)
            if len(done) < len(messages):
                break  # the rest stays in the dead-letter queue and can be moved by another run
        return moved

    def _release(self, queue_url: str, handles: list[str]) -> None:
        """Make messages read for a look visible again at once."""
        for start in range(0, len(handles), SQS_BATCH_LIMIT):
            self._sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for index, handle in enumerate(handles[start : start + SQS_BATCH_LIMIT])
                ],
            )

    def _receive(self, queue_url: str, visibility_seconds: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=SQS_BATCH_LIMIT,
            VisibilityTimeout=visibility_seconds,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages
