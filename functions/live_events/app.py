"""Canvas Live Events from the queue: verify, parse, route to the tenant, re-read the affected course."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.events.apply import apply_live_event
from rostersync.events.intake import JwksCache, read_incoming_event
from rostersync.events.models import NormalizedEvent
from rostersync.events.parse import parse_event
from rostersync.services import Services

logger = Logger()
tracer = Tracer()
services = Services.from_environment()
jwks = JwksCache(services.settings.live_events_jwks_url)
processor = BatchProcessor(event_type=EventType.SQS, model=SqsRecordModel)
# Canvas may deliver an event more than once: the same event is applied once a day at most.
idempotency = IdempotencyConfig(event_key_jmespath="dedupe_key", expires_after_seconds=86400)
persistence = DynamoDBPersistenceLayer(
    table_name=services.settings.table_name, key_attr="pk", sort_key_attr="sk", expiry_attr="expires_at"
)


class InvalidLiveEventError(ValueError):
    """Kept for the dead-letter queue: a malformed event is never dropped silently."""


@idempotent_function(  # type: ignore[untyped-decorator]
    data_keyword_argument="event", config=idempotency, persistence_store=persistence
)
def apply_once(event: NormalizedEvent) -> dict[str, Any]:
    result = apply_live_event(services, event)
    summary = {"outcome": result.outcome.value, "reason": result.reason, "courses": result.course_ids}
    logger.info("live event", extra={"event_name": event.event_name, "tenants": result.tenant_ids, **summary})
    return summary


def record_handler(record: SqsRecordModel) -> None:
    document, _ = read_incoming_event(str(record.body), jwks)
    parsed = parse_event(document)
    if parsed.status == "invalid" or (parsed.status == "ok" and parsed.event is None):
        raise InvalidLiveEventError(parsed.reason or "unreadable event")
    if parsed.event is not None and parsed.status == "ok":
        apply_once(event=parsed.event)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, object], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
