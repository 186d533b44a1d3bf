"""Canvas Live Events: models, a pure parser and signed-event (JWT) verification."""

from rostersync.events.models import NormalizedEvent, ObjectType, ParsedEvent
from rostersync.events.parse import parse_event
from rostersync.events.signing import SignedEventError, SignedEventFailure, decode_signed_event

__all__ = [
    "NormalizedEvent",
    "ObjectType",
    "ParsedEvent",
    "SignedEventError",
    "SignedEventFailure",
    "decode_signed_event",
    "parse_event",
]
