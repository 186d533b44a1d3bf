"""Turning what arrives (plain JSON or a signed JWT, over SQS or HTTPS) into a verified event document."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from rostersync.events.signing import (
    SignedEventError,
    SignedEventFailure,
    decode_signed_event,
    event_from_claims,
    looks_like_jwt,
    read_signed_event_unverified,
)

JWKS_MAX_AGE_SECONDS = 3600
UNKNOWN_KID_REFETCH_SECONDS = 60  # a token naming a key we do not know refetches at most this often


class UnreadableEventError(ValueError):
    """Neither an event's JSON nor a signed token."""


class EventTooLargeError(UnreadableEventError):
    """Larger than any Canvas live event (they are a few KB); refused before parsing."""


# Canvas's events are a few KB; the cap keeps a hostile body from costing parsing time or an SQS send.
MAX_EVENT_BYTES = 64 * 1024


class JwksCache:
    """Canvas's signing keys, fetched once an hour, and again when a token names a new key (rotation)."""

    def __init__(
        self, url: str, *, timeout_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._url = url
        self._timeout = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks: dict[str, Any] = {"keys": []}
        self._fetched_at: float | None = None

    def keys_for(self, kid: str | None) -> dict[str, Any]:
        with self._lock:
            age = None if self._fetched_at is None else self._clock() - self._fetched_at
            known = any(key.get("kid") == kid for key in self._jwks.get("keys", []))
            if age is None or age > JWKS_MAX_AGE_SECONDS or (not known and age > UNKNOWN_KID_REFETCH_SECONDS):
                response = requests.get(self._url, timeout=self._timeout)
                response.raise_for_status()
                self._jwks = response.json()
                self._fetched_at = self._clock()
            return self._jwks


def read_incoming_event(payload: str, jwks: JwksCache) -> tuple[dict[str, Any], bool]:
    """The event document and whether it was signed (and verified). Raises on forgeries and garbage."""
    if len(payload.encode()) > MAX_EVENT_BYTES:
        raise EventTooLargeError(f"the event is larger than {MAX_EVENT_BYTES // 1024} KB")
    text = payload.strip()
    if looks_like_jwt(text):
        header_kid = _unverified_kid(text)
        try:
            keys = jwks.keys_for(header_kid)
        except (requests.RequestException, ValueError) as error:
            raise SignedEventError(
                SignedEventFailure.INVALID_JWKS, f"the JWKS could not be fetched: {error}"
            ) from error
        claims = decode_signed_event(text, keys)
        document = event_from_claims(claims)
        if document is None:
            raise UnreadableEventError("the signed token holds no Canvas or Caliper event")
        return document, True
    try:
        document = json.loads(text)
    except ValueError as error:
        raise UnreadableEventError("the payload is neither JSON nor a signed token") from error
    if not isinstance(document, dict):
        raise UnreadableEventError("the payload is JSON but not an object")
    return document, False


def _unverified_kid(token: str) -> str | None:
    try:
        header, _ = read_signed_event_unverified(token)
    except SignedEventError:
        return None
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None
