"""One sync request per record: plan the tenant's run and fan its courses out."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from rostersync.models import SyncRequest
from rostersync.services import Services
from rostersync.sync.planner import plan_run

logger = Logger()
tracer = Tracer()
services = Services.from_environment()


class SyncRequestRecord(SqsRecordModel):
    body: Json[SyncRequest]


processor = BatchProcessor(event_type=EventType.SQS, model=SyncRequestRecord)


def record_handler(record: SyncRequestRecord) -> None:
    plan_run(services, record.body)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, object], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
