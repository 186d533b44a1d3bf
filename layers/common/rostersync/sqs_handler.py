"""The Lambda handler every SQS-fed function shares, in Powertools' own shape.

Each record is parsed into the function's pydantic model and handed to its record handler; a record whose
handler raises is reported back as a partial batch failure, so SQS retries only that record (and in the
end moves it to the dead-letter queue). The handler carries Powertools' logging context and tracing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from rostersync.tracing import traced

if TYPE_CHECKING:  # only the functions that use idempotency import it, at their cold start
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

# The function's own logger: Powertools shares one instance per service across modules.
logger = Logger()

RecordT = TypeVar("RecordT", bound=SqsRecordModel)
SqsHandler = Callable[[dict[str, object], LambdaContext], PartialItemFailureResponse]
# Given the records of one batch (those that parse), the record handler for that batch, while it lasts.
BatchScope = Callable[[list[RecordT]], AbstractContextManager[Callable[[RecordT], None]]]


def sqs_batch_handler(
    record_model: type[RecordT],
    record_handler: Callable[[RecordT], None],
    *,
    idempotency: IdempotencyConfig | None = None,
) -> SqsHandler:
    """The function's `handler`: each record of the batch parsed into `record_model` and given to
    `record_handler`. With `idempotency`, its config learns each invocation's remaining time, so a record
    cut off by the timeout is not taken for one in progress when it comes back."""
    return sqs_batch_scoped_handler(
        record_model, lambda _records: nullcontext(record_handler), idempotency=idempotency
    )


def sqs_batch_scoped_handler(
    record_model: type[RecordT],
    batch_scope: BatchScope[RecordT],
    *,
    idempotency: IdempotencyConfig | None = None,
) -> SqsHandler:
    """As sqs_batch_handler, for records that share work across their batch: `batch_scope` sees the
    batch's records first and gives the record handler; what it does on leaving follows the last record."""
    processor = BatchProcessor(event_type=EventType.SQS, model=record_model)

    @logger.inject_lambda_context
    @traced
    def handler(event: dict[str, object], context: LambdaContext) -> PartialItemFailureResponse:
        if idempotency is not None:
            idempotency.register_lambda_context(context)
        with batch_scope(_parsed_records(record_model, event)) as record_handler:
            return process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )

    return handler


def _parsed_records(record_model: type[RecordT], event: dict[str, object]) -> list[RecordT]:
    """The batch's records that parse; the processor reports the others as failures."""
    records = event.get("Records")
    parsed = []
    for record in records if isinstance(records, list) else []:
        try:
            parsed.append(record_model.model_validate(record))
        except ValidationError:
            continue
    return parsed
