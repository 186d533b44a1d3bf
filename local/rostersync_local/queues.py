"""SQS event sources as Lambda runs them: poll, invoke with a batch, delete what did not fail."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from rostersync_local.functions import Invocation
from rostersync_local.template import ACCOUNT_ID, REGION, QueueTriggerSpec

logger = logging.getLogger("rostersync_local.queues")
SQS_RECEIVE_LIMIT = 10


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS message in the shape Lambda hands it to a function."""
    attributes = {
        name: message["Attributes"][name]
        for name in (
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
            "SequenceNumber",
            "MessageGroupId",
            "MessageDeduplicationId",
            "AWSTraceHeader",
        )
        if name in message.get("Attributes", {})
    }
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


class QueuePoller:
    """One poller thread per concurrent execution the trigger allows."""

    def __init__(
        self,
        trigger: QueueTriggerSpec,
        *,
        queue_url: str,
        queue_name: str,
        sqs: Any,
        invoke: Callable[[str, Any], Invocation],
        concurrency: int,
        retry_delay_seconds: int | None,
    ) -> None:
        self.trigger = trigger
        self._queue_url = queue_url
        self._queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue_name}"
        self._sqs = sqs
        self._invoke = invoke
        self._retry_delay = retry_delay_seconds
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"poll-{trigger.logical_id}-{index}", daemon=True)
            for index in range(concurrency)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # keep polling, as Lambda's pollers do, but say why
                logger.exception("poller %s failed", self.trigger.logical_id)
                self._stop.wait(1)

    def poll_once(self) -> int:
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(self.trigger.batch_size, SQS_RECEIVE_LIMIT),
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [lambda_record(message, self._queue_arn) for message in messages]}
        invocation = self._invoke(self.trigger.function, event)
        if invocation.error is not None:
            # A function error returns the whole batch to the queue.
            logger.warning("%s failed: %s", self.trigger.function, invocation.error.get("errorMessage"))
            self._delay_retry([message["ReceiptHandle"] for message in messages])
            return len(messages)
        failed: set[str] = set()
        if self.trigger.report_batch_item_failures and isinstance(invocation.payload, dict):
            failed = {item["itemIdentifier"] for item in invocation.payload.get("batchItemFailures", [])}
        done = [message for message in messages if message["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(done)
                ],
            )
        self._delay_retry(
            [message["ReceiptHandle"] for message in messages if message["MessageId"] in failed]
        )
        return len(messages)

    def _delay_retry(self, receipt_handles: list[str]) -> None:
        # Local speed-up only (opt-in): failed messages come back after this delay, not the queue's timeout.
        if self._retry_delay is None:
            return
        for handle in receipt_handles:
            self._sqs.change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=handle, VisibilityTimeout=self._retry_delay
            )
