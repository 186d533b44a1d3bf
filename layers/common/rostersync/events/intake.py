"""Turning what arrives (plain JSON or a signed JWT, over SQS or HTTPS) into a verified event document."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from rostersync.events.signing import (
    decode_signed_event,
    event_from_claims,
    looks_like_jwt,
    read_signed_event_unverified,
)

JWKS_MAX_AGE_SECONDS = 3600
# At most one fetch this often after the first: tokens naming unknown key ids (rotation, or anyone's
# made-up kid) and an unreachable JWKS endpoint cost one request to it per interval, not one per event.
JWKS_REFETCH_INTERVAL_SECONDS = 60
# A signed event without `exp` is accepted this long after it was issued (its `iat`, else its own time).
SIGNED_EVENT_MAX_AGE_SECONDS = 600
# Canvas's events are a few KB; the cap keeps a hostile body from costing parsing time or an SQS send.
MAX_EVENT_BYTES = 64 * 1024
# Canvas's events nest about six levels (Caliper's object extensions); far deeper is no event of theirs.
MAX_EVENT_DEPTH = 32
TOO_DEEP = "the JSON is nested too deeply for a live event"


class UnreadableEventError(ValueError):
    """Neither an event's JSON nor a signed token."""


class EventTooLargeError(UnreadableEventError):
    """Larger than any Canvas live event (they are a few KB); refused before parsing."""


class JwksUnavailableError(Exception):
    """Canvas's JWKS could not be fetched and no cached key fits the token: not the sender's fault."""


@dataclass(frozen=True)
class IncomingEvent:
    document: dict[str, Any]
    signed: bool  # a JWT whose signature and times were verified


class JwksCache:
    """Canvas's signing keys, fetched once an hour, and again when a token names a key we do not hold
    (rotation); when a fetch fails, the keys already held still verify the tokens they sign."""

    def __init__(
        self, url: str, *, timeout_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._url = url
        self._timeout = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks: dict[str, Any] = {"keys": []}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._last_failure: str | None = None

    def keys_for(self, kid: str | None) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > JWKS_MAX_AGE_SECONDS
            may_fetch = self._attempted_at is None or now - self._attempted_at > JWKS_REFETCH_INTERVAL_SECONDS
            if (stale or not self._holds(kid)) and may_fetch:
                self._attempted_at = now
                try:
                    self._jwks = self._fetch()
                    self._fetched_at, self._last_failure = now, None
                except (requests.RequestException, ValueError) as error:
                    self._last_failure = f"{type(error).__name__}: {error}"
            if self._last_failure is not None and not self._holds(kid):
                raise JwksUnavailableError(f"the JWKS could not be fetched ({self._last_failure})")
            return self._jwks

    def _holds(self, kid: str | None) -> bool:
        return any(key.get("kid") == kid for key in self._jwks["keys"])

    def _fetch(self) -> dict[str, Any]:
        response = requests.get(self._url, timeout=self._timeout)
        response.raise_for_status()
        jwks = response.json()
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
            raise ValueError('the JWKS is not an object with a "keys" list')
        return {"keys": keys}


def read_incoming_event(payload: str, jwks: JwksCache, *, now: datetime | None = None) -> IncomingEvent:
    """The event document and whether it was signed, checked as of `now` (default: the present).
    Raises SignedEventError for forgeries, UnreadableEventError for garbage and JwksUnavailableError
    when the signature cannot be checked yet."""
    if len(payload.encode()) > MAX_EVENT_BYTES:
        raise EventTooLargeError(f"the event is larger than {MAX_EVENT_BYTES // 1024} KB")
    text = payload.strip()
    if looks_like_jwt(text):
        keys = jwks.keys_for(_unverified_kid(text))
        claims = decode_signed_event(text, keys, now=now, max_age_without_exp=SIGNED_EVENT_MAX_AGE_SECONDS)
        document = event_from_claims(claims)
        if document is None:
            raise UnreadableEventError("the signed token holds no Canvas or Caliper event")
        _check_depth(document)
        return IncomingEvent(document, signed=True)
    try:
        document = json.loads(text)
    except RecursionError as error:  # not a ValueError: it would otherwise end as a 500
        raise UnreadableEventError(TOO_DEEP) from error
    except ValueError as error:
        raise UnreadableEventError("the payload is neither JSON nor a signed token") from error
    if not isinstance(document, dict):
        raise UnreadableEventError("the payload is JSON but not an object")
    _check_depth(document)
    return IncomingEvent(document, signed=False)


def _check_depth(document: dict[str, Any]) -> None:
    """Refuse nesting no Canvas event has, before any code walks it (iteratively: no recursion here)."""
    level: list[Any] = [document]
    for _ in range(MAX_EVENT_DEPTH):
        level = [
            child
            for value in level
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, dict | list)
        ]
        if not level:
            return
    raise UnreadableEventError(TOO_DEEP)


def _unverified_kid(token: str) -> str | None:
    header, _ = read_signed_event_unverified(token)  # looks_like_jwt has read it once already
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None
