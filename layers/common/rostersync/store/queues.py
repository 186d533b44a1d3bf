"""SQS: sync requests to the planner, course messages to the workers."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import boto3

from rostersync.models import CourseSyncMessage, SyncRequest

SQS_BATCH_LIMIT = 10
# The message attribute (and its value) on live events the HTTPS intake queued: only senders with
# sqs:SendMessage on the queue (our intake, Instructure's account) can set attributes, never an HTTP caller.
LIVE_EVENT_INTAKE_ATTRIBUTE = "rostersync-intake"
HTTPS_INTAKE = "https"


class QueueSendError(Exception):
    pass


class SyncQueues:
    def __init__(
        self,
        sync_request_queue_url: str,
        course_sync_queue_url: str,
        live_events_queue_url: str = "",
        client: Any = None,
    ) -> None:
        self._sync_requests = sync_request_queue_url
        self._course_syncs = course_sync_queue_url
        self._live_events = live_events_queue_url
        if client is not None:
            self._client = client

    # Made when first used: a function that never sends a message never pays for the client at cold start.
    @cached_property
    def _client(self) -> Any:
        return boto3.client("sqs")

    def send_live_event(self, payload: str, *, from_https_intake: bool = False) -> None:
        """As received (signed tokens stay signed: the consumer verifies again). What the public HTTPS
        intake forwards is marked, so the consumer never takes it for Canvas Data Services' own."""
        attributes = (
            {LIVE_EVENT_INTAKE_ATTRIBUTE: {"DataType": "String", "StringValue": HTTPS_INTAKE}}
            if from_https_intake
            else {}
        )
        self._client.send_message(
            QueueUrl=self._live_events, MessageBody=payload, MessageAttributes=attributes
        )

    def send_sync_request(self, request: SyncRequest) -> None:
        self._client.send_message(QueueUrl=self._sync_requests, MessageBody=request.model_dump_json())

    def send_course_messages(self, messages: Sequence[CourseSyncMessage]) -> None:
        for start in range(0, len(messages), SQS_BATCH_LIMIT):
            entries = [
                # The tenant as message group: an SQS fair queue keeps one busy tenant from starving others.
                {
                    "Id": str(index),
                    "MessageBody": message.model_dump_json(),
                    "MessageGroupId": message.tenant_id,
                }
                for index, message in enumerate(messages[start : start + SQS_BATCH_LIMIT])
            ]
            self._send_batch(entries)

    def _send_batch(self, entries: list[dict[str, str]]) -> None:
        # SendMessageBatch can fail per entry; resend those once, then give up loudly (the planner retries).
        for _ in range(2):
            failed_ids = {
                failure["Id"]
                for failure in self._client.send_message_batch(
                    QueueUrl=self._course_syncs, Entries=entries
                ).get("Failed", [])
            }
            entries = [entry for entry in entries if entry["Id"] in failed_ids]
            if not entries:
                return
        raise QueueSendError(f"{len(entries)} course messages could not be queued")
