"""HTTPS intake of Canvas Live Events: verify a signed event, queue it, answer within Canvas's 15 s."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.events.intake import (
    EventTooLargeError,
    JwksCache,
    JwksUnavailableError,
    UnreadableEventError,
    read_incoming_event,
)
from rostersync.events.parse import parse_event
from rostersync.events.signing import SignedEventError
from rostersync.services import Services
from rostersync.tracing import traced

logger = Logger()
app = APIGatewayHttpResolver()
services = Services.from_environment()
jwks = JwksCache(services.settings.live_events_jwks_url)


def _answer(status: int, body: dict[str, str]) -> Response[dict[str, str]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.post("/live-events")
def receive_live_event() -> Response[dict[str, str]]:
    try:
        payload = app.current_event.decoded_body or ""
    except UnicodeDecodeError:
        return _answer(400, {"error": "the body is not UTF-8 text"})
    try:
        incoming = read_incoming_event(payload, jwks)
    except SignedEventError as error:
        logger.warning("signed live event refused", extra={"reason": error.reason.value})
        return _answer(401, {"error": "invalid signature", "reason": error.reason.value})
    except JwksUnavailableError as error:
        logger.error("live event signing keys unavailable", extra={"detail": str(error)})
        return _answer(503, {"error": "the signing keys could not be fetched; send the event again later"})
    except EventTooLargeError as error:
        return _answer(413, {"error": str(error)})
    except UnreadableEventError as error:
        return _answer(400, {"error": str(error)})
    if not incoming.signed and services.settings.require_signed_live_events:
        refusal = {"error": "this deployment accepts signed live events only", "reason": "unsigned"}
        return _answer(401, refusal)
    parsed = parse_event(incoming.document)
    if parsed.status == "invalid":
        return _answer(400, {"error": parsed.reason or "invalid event"})
    if parsed.status == "ignored":
        return _answer(202, {"status": "ignored", "reason": parsed.reason or ""})
    services.queues.send_live_event(payload, from_https_intake=True)
    return _answer(202, {"status": "queued", "signed": str(incoming.signed).lower()})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@traced
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    return app.resolve(event, context)
