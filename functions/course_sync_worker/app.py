"""One course per record: read its roster from Canvas and write what changed."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from rostersync.models import CourseSyncMessage
from rostersync.observability import publish_course_metrics
from rostersync.services import Services
from rostersync.sync.course import sync_course

logger = Logger()
tracer = Tracer()
services = Services.from_environment()


class CourseSyncRecord(SqsRecordModel):
    body: Json[CourseSyncMessage]


processor = BatchProcessor(event_type=EventType.SQS, model=CourseSyncRecord)


def record_handler(record: CourseSyncRecord) -> None:
    result = sync_course(services, record.body, attempt=int(record.attributes.ApproximateReceiveCount))
    publish_course_metrics(result)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, object], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
