"""One grade batch per record: find or create the assignment, send the grades Canvas does not have."""

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json

from rostersync.grades.passback import process_batch
from rostersync.models import GradeMessage
from rostersync.services import Services
from rostersync.sqs_handler import sqs_batch_handler

services = Services.from_environment()


class GradeRecord(SqsRecordModel):
    body: Json[GradeMessage]


def record_handler(record: GradeRecord) -> None:
    process_batch(services, record.body)  # RetryLaterError (Canvas unavailable) fails the record: SQS retries


handler = sqs_batch_handler(GradeRecord, record_handler)
