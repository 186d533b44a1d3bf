"""New feed entries from the table's stream, published to the roster event bus (at least once: a failed
record is retried, then its stream record goes to the dead-letter queue; the feed itself keeps it)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.delivery.publishing import publish_feed_entry
from rostersync.services import Services
from rostersync.store.event_bus import RosterEventBus
from rostersync.store.feed import feed_entry_of
from rostersync.store.keys import feed_tenant_id
from rostersync.tracing import traced

logger = Logger()
services = Services.from_environment()
bus = RosterEventBus(services.settings.roster_event_bus_name)
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def publish(record: DynamoDBRecord) -> None:
    assert record.dynamodb is not None
    image = record.dynamodb.new_image
    tenant_id = feed_tenant_id(str(image["pk"]))
    entry = feed_entry_of(image)
    count = publish_feed_entry(services.table, bus, tenant_id, entry)
    logger.info(
        "feed entry published",
        extra={
            "tenant_id": tenant_id,
            "sequence": entry.sequence,
            "course_id": entry.course_id,
            "events": count,
        },
    )


@logger.inject_lambda_context
@traced
def handler(event: dict[str, object], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=publish, processor=processor, context=context)
