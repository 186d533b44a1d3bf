"""The SQS handler every queue-fed function shares: typed records, partial batch failures."""

import json
import time
import uuid
from typing import Any, cast

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.parser import BaseModel
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from rostersync.sqs_handler import sqs_batch_handler
from rostersync_local.lambda_host import LocalLambdaContext
from rostersync_local.queues import lambda_record

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:work"


class Work(BaseModel):
    item: str


class WorkRecord(SqsRecordModel):
    body: Json[Work]


def _record(body: str) -> dict[str, Any]:
    message_id = str(uuid.uuid4())
    message = {
        "MessageId": message_id,
        "ReceiptHandle": f"handle-{message_id}",
        "Body": body,
        "MD5OfBody": "0" * 32,
        "Attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(int(time.time() * 1000)),
            "SenderId": "local",
            "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
        },
    }
    return lambda_record(message, QUEUE_ARN)


def _context() -> LambdaContext:
    # The local runner's context: what a Lambda handler reads of Lambda's own.
    return cast(
        LambdaContext,
        LocalLambdaContext(
            function_name="work",
            memory_limit_in_mb=128,
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:work",
            aws_request_id=str(uuid.uuid4()),
            deadline=time.time() + 30,
        ),
    )


def test_only_the_records_that_failed_go_back_to_the_queue() -> None:
    handled: list[str] = []

    def record_handler(record: WorkRecord) -> None:
        if record.body.item == "refused":
            raise RuntimeError("refused")
        handled.append(record.body.item)

    handler = sqs_batch_handler(WorkRecord, record_handler)
    good = _record(json.dumps({"item": "first"}))
    refused = _record(json.dumps({"item": "refused"}))
    unreadable = _record(json.dumps({"other": "field"}))
    also_good = _record(json.dumps({"item": "second"}))

    reply = handler({"Records": [good, refused, unreadable, also_good]}, _context())

    assert handled == ["first", "second"]
    assert sorted(str(failure["itemIdentifier"]) for failure in reply["batchItemFailures"]) == sorted(
        [refused["messageId"], unreadable["messageId"]]
    )


def test_an_idempotent_function_learns_the_invocation_it_runs_in() -> None:
    idempotency = IdempotencyConfig()
    handler = sqs_batch_handler(WorkRecord, lambda record: None, idempotency=idempotency)
    context = _context()

    reply = handler({"Records": [_record(json.dumps({"item": "one"}))]}, context)

    assert reply["batchItemFailures"] == []
    assert idempotency.lambda_context is context
