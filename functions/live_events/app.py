"""Canvas Live Events from the queue: verify, parse, route to the tenants, re-read the affected course."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel

from rostersync.events.apply import apply_live_event, not_connected, record_outcome, routed_tenants
from rostersync.events.intake import JwksCache, read_incoming_event
from rostersync.events.models import EventOrigin, TenantEvent
from rostersync.events.parse import parse_event
from rostersync.models import Tenant, TenantStatus
from rostersync.services import Services
from rostersync.sqs_handler import sqs_batch_handler
from rostersync.store.dynamo import plain_client
from rostersync.store.queues import HTTPS_INTAKE, LIVE_EVENT_INTAKE_ATTRIBUTE

logger = Logger()
services = Services.from_environment()
jwks = JwksCache(services.settings.live_events_jwks_url)
# Canvas may deliver an event more than once: the same event is applied to a tenant once a day at most.
idempotency = IdempotencyConfig(event_key_jmespath="dedupe_key", expires_after_seconds=86400)
persistence = DynamoDBPersistenceLayer(
    table_name=services.settings.table_name,
    key_attr="pk",
    sort_key_attr="sk",
    expiry_attr="expires_at",
    boto3_client=plain_client(),
)


class InvalidLiveEventError(ValueError):
    """Kept for the dead-letter queue: a malformed event is never dropped silently."""


@idempotent_function(  # type: ignore[untyped-decorator]
    data_keyword_argument="event", config=idempotency, persistence_store=persistence
)
def apply_once(tenant: Tenant, *, event: TenantEvent) -> dict[str, Any]:
    result = apply_live_event(services, tenant, event)
    record_outcome(services, event, result)
    summary = {
        "outcome": result.outcome.value,
        "reason": result.reason,
        "courses": result.course_ids,
        "deferred_courses": result.deferred_course_ids,
    }
    logger.info(
        "live event",
        extra={
            "event_name": event.event.event_name,
            "tenant_id": tenant.tenant_id,
            "origin": event.origin.value,
            **summary,
        },
    )
    return summary


def origin_of(record: SqsRecordModel, signed: bool) -> EventOrigin:
    """Signed tokens are verified wherever they came from. Unsigned JSON is Canvas Data Services' own
    unless our public HTTPS intake forwarded it (it marks what it forwards)."""
    if signed:
        return EventOrigin.SIGNED
    marker = record.messageAttributes.get(LIVE_EVENT_INTAKE_ATTRIBUTE)
    if marker is not None and marker.stringValue == HTTPS_INTAKE:
        return EventOrigin.UNSIGNED
    return EventOrigin.DATA_SERVICES


def record_handler(record: SqsRecordModel) -> None:
    # A token is checked as of when it was queued (SQS's own time), so a queue backlog does not expire it.
    incoming = read_incoming_event(str(record.body), jwks, now=record.attributes.SentTimestamp)
    origin = origin_of(record, incoming.signed)
    if origin is EventOrigin.UNSIGNED and services.settings.require_signed_live_events:
        logger.warning(
            "unsigned live event dropped: this deployment accepts signed live events only",
            extra={"message_id": record.messageId},
        )
        return
    parsed = parse_event(incoming.document)
    if parsed.status == "invalid" or (parsed.status == "ok" and parsed.event is None):
        raise InvalidLiveEventError(parsed.reason or "unreadable event")
    if parsed.event is None or parsed.status != "ok":
        return
    tenants = routed_tenants(services, parsed.event)
    if not tenants:
        logger.warning(
            "live event for no connected tenant dropped",
            extra={
                "event_name": parsed.event.event_name,
                "root_account_uuid": parsed.event.root_account_uuid,
                "host": parsed.event.hostname,
            },
        )
    for tenant in tenants:
        tenant_event = TenantEvent(tenant_id=tenant.tenant_id, origin=origin, event=parsed.event)
        if tenant.status is TenantStatus.ACTIVE:
            apply_once(tenant, event=tenant_event)
        else:
            record_outcome(services, tenant_event, not_connected(tenant))


handler = sqs_batch_handler(SqsRecordModel, record_handler, idempotency=idempotency)
