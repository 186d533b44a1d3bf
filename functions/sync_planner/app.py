"""One sync request per record: plan the tenant's run and fan its courses out."""

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json

from rostersync.models import SyncRequest
from rostersync.services import Services
from rostersync.sqs_handler import sqs_batch_handler
from rostersync.sync.planner import plan_run

services = Services.from_environment()


class SyncRequestRecord(SqsRecordModel):
    body: Json[SyncRequest]


def record_handler(record: SyncRequestRecord) -> None:
    plan_run(services, record.body)


handler = sqs_batch_handler(SyncRequestRecord, record_handler)
