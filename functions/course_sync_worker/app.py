"""One course per record: read its roster from Canvas and write what changed."""

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json

from rostersync.models import CourseSyncMessage
from rostersync.observability import publish_course_metrics
from rostersync.services import Services
from rostersync.sqs_handler import sqs_batch_handler
from rostersync.sync.course import sync_course

services = Services.from_environment()


class CourseSyncRecord(SqsRecordModel):
    body: Json[CourseSyncMessage]


def record_handler(record: CourseSyncRecord) -> None:
    result = sync_course(services, record.body, attempt=int(record.attributes.ApproximateReceiveCount))
    publish_course_metrics(result)


handler = sqs_batch_handler(CourseSyncRecord, record_handler)
