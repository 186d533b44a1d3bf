"""One course per record: read its roster from Canvas and write what changed. The courses of a batch are
read from DynamoDB together first and recorded together last (sync/course.py's CourseBatch)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json

from rostersync.models import CourseSyncMessage
from rostersync.observability import publish_course_metrics
from rostersync.services import Services
from rostersync.sqs_handler import sqs_batch_scoped_handler
from rostersync.sync.course import course_batch

services = Services.from_environment()


class CourseSyncRecord(SqsRecordModel):
    body: Json[CourseSyncMessage]


@contextmanager
def course_sync_batch(records: list[CourseSyncRecord]) -> Iterator[Callable[[CourseSyncRecord], None]]:
    with course_batch(services, [record.body for record in records]) as batch:

        def record_handler(record: CourseSyncRecord) -> None:
            result = batch.sync(record.body, attempt=int(record.attributes.ApproximateReceiveCount))
            publish_course_metrics(result)

        yield record_handler


handler = sqs_batch_scoped_handler(CourseSyncRecord, course_sync_batch)
