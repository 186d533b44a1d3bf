"""One grade batch per record: find or create the assignment, send the grades Canvas does not have."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from rostersync.grades.passback import process_batch
from rostersync.models import GradeMessage
from rostersync.services import Services

logger = Logger()
tracer = Tracer()
services = Services.from_environment()


class GradeRecord(SqsRecordModel):
    body: Json[GradeMessage]


processor = BatchProcessor(event_type=EventType.SQS, model=GradeRecord)


def record_handler(record: GradeRecord) -> None:
    process_batch(services, record.body)  # RetryLater (Canvas unavailable) fails the record: SQS retries


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, object], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
