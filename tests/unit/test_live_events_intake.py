"""Reading what arrives at the live-event intake: signed tokens against a JWKS served over HTTP (fetched,
cached, refetched on rotation, rate-limited for unknown key ids, surviving a failed fetch), the age bound of
tokens without `exp`, hostile JSON, and the per-tenant dedupe key."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rostersync.events.intake import (
    JWKS_MAX_AGE_SECONDS,
    JWKS_REFETCH_INTERVAL_SECONDS,
    MAX_EVENT_BYTES,
    SIGNED_EVENT_MAX_AGE_SECONDS,
    EventTooLargeError,
    JwksCache,
    JwksUnavailableError,
    UnreadableEventError,
    read_incoming_event,
)
from rostersync.events.models import EventOrigin, TenantEvent
from rostersync.events.parse import parse_event
from rostersync.events.signing import SignedEventError, SignedEventFailure
from tests.unit.test_live_events_signing import Signer, event_claims

NOW = datetime.now(UTC).replace(microsecond=0)


class JwksServer:
    """Canvas's JWKS endpoint on loopback: serves `jwks` (or fails with `status`), counting fetches."""

    def __init__(self, jwks: Any) -> None:
        self.jwks = jwks
        self.status = 200
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                body = json.dumps(server.jwks).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}/jwks"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def canvas_keys() -> tuple[Signer, Signer]:
    return Signer("canvas-current"), Signer("canvas-next")


@pytest.fixture
def jwks_server(canvas_keys: tuple[Signer, Signer]) -> Iterator[JwksServer]:
    current, _ = canvas_keys
    server = JwksServer(current.jwks())
    yield server
    server.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(jwks_server: JwksServer, clock: Clock) -> JwksCache:
    return JwksCache(jwks_server.url, clock=clock)


def fresh_claims() -> dict[str, Any]:
    return event_claims(
        lifetime=None, iat=int(NOW.timestamp()), exp=int((NOW + timedelta(minutes=5)).timestamp())
    )


def test_a_genuinely_signed_event_is_read_as_signed_and_plain_json_as_unsigned(
    canvas_keys: tuple[Signer, Signer], cache: JwksCache, jwks_server: JwksServer
) -> None:
    current, _ = canvas_keys
    claims = fresh_claims()
    incoming = read_incoming_event(current.token(claims), cache, now=NOW)
    assert incoming.signed and incoming.document == claims
    assert parse_event(incoming.document).status == "ok"
    plain = read_incoming_event(json.dumps({"metadata": {}, "body": {}}), cache, now=NOW)
    assert not plain.signed
    assert jwks_server.fetches == 1


def test_a_token_naming_a_rotated_in_key_fetches_the_jwks_again(
    canvas_keys: tuple[Signer, Signer], cache: JwksCache, jwks_server: JwksServer, clock: Clock
) -> None:
    current, upcoming = canvas_keys
    read_incoming_event(current.token(fresh_claims()), cache, now=NOW)
    jwks_server.jwks = {"keys": [current.public_jwk(), upcoming.public_jwk()]}  # Canvas rotated
    clock.now += JWKS_REFETCH_INTERVAL_SECONDS + 1
    assert read_incoming_event(upcoming.token(fresh_claims()), cache, now=NOW).signed
    assert jwks_server.fetches == 2
    read_incoming_event(upcoming.token(fresh_claims()), cache, now=NOW)
    assert jwks_server.fetches == 2  # held now


def test_tokens_naming_unknown_keys_fetch_the_jwks_at_most_once_per_interval(
    canvas_keys: tuple[Signer, Signer], cache: JwksCache, jwks_server: JwksServer, clock: Clock
) -> None:
    current, _ = canvas_keys
    for attempt in range(20):
        with pytest.raises(SignedEventError) as refused:
            read_incoming_event(current.token(fresh_claims(), kid=f"made-up-{attempt}"), cache, now=NOW)
        assert refused.value.reason is SignedEventFailure.UNKNOWN_KID
        clock.now += 1
    assert jwks_server.fetches == 1
    clock.now += JWKS_REFETCH_INTERVAL_SECONDS
    with pytest.raises(SignedEventError):
        read_incoming_event(current.token(fresh_claims(), kid="made-up-later"), cache, now=NOW)
    assert jwks_server.fetches == 2


def test_the_jwks_is_fetched_again_after_an_hour(
    canvas_keys: tuple[Signer, Signer], cache: JwksCache, jwks_server: JwksServer, clock: Clock
) -> None:
    current, _ = canvas_keys
    read_incoming_event(current.token(fresh_claims()), cache, now=NOW)
    clock.now += JWKS_MAX_AGE_SECONDS - 1
    read_incoming_event(current.token(fresh_claims()), cache, now=NOW)
    assert jwks_server.fetches == 1
    clock.now += 2
    read_incoming_event(current.token(fresh_claims()), cache, now=NOW)
    assert jwks_server.fetches == 2


def test_a_failed_jwks_fetch_is_unavailable_not_a_bad_signature_and_is_not_retried_at_once(
    canvas_keys: tuple[Signer, Signer], cache: JwksCache, jwks_server: JwksServer, clock: Clock
) -> None:
    current, _ = canvas_keys
    token = current.token(fresh_claims())
    jwks_server.status = 500
    for _ in range(5):
        with pytest.raises(JwksUnavailableError):
            read_incoming_event(token, cache, now=NOW)
    assert jwks_server.fetches == 1
    jwks_server.status = 200
    clock.now += JWKS_REFETCH_INTERVAL_SECONDS + 1
    assert read_incoming_event(token, cache, now=NOW).signed
    assert jwks_server.fetches == 2


def test_keys_already_held_still_verify_while_the_jwks_cannot_be_fetched(
    canvas_keys: tuple[Signer, Signer], cache: JwksCache, jwks_server: JwksServer, clock: Clock
) -> None:
    current, upcoming = canvas_keys
    read_incoming_event(current.token(fresh_claims()), cache, now=NOW)
    jwks_server.status = 503
    clock.now += JWKS_MAX_AGE_SECONDS + 1
    assert read_incoming_event(current.token(fresh_claims()), cache, now=NOW).signed
    with pytest.raises(JwksUnavailableError):
        read_incoming_event(upcoming.token(fresh_claims()), cache, now=NOW)


@pytest.mark.parametrize("jwks", [[1, 2], {"keys": "none"}, {"keys": [1]}, "not json"])
def test_a_jwks_that_is_not_a_key_set_counts_as_a_failed_fetch(
    canvas_keys: tuple[Signer, Signer], cache: JwksCache, jwks_server: JwksServer, jwks: Any
) -> None:
    jwks_server.jwks = jwks
    with pytest.raises(JwksUnavailableError):
        read_incoming_event(canvas_keys[0].token(fresh_claims()), cache, now=NOW)


# -- how long a signed event stays valid -----------------------------------------------------------------
def test_a_signed_event_without_exp_is_accepted_only_shortly_after_its_iat(
    canvas_keys: tuple[Signer, Signer], cache: JwksCache
) -> None:
    current, _ = canvas_keys
    recent = event_claims(lifetime=None, iat=int((NOW - timedelta(seconds=30)).timestamp()))
    assert read_incoming_event(current.token(recent), cache, now=NOW).signed
    old = event_claims(lifetime=None, iat=int((NOW - timedelta(days=3)).timestamp()))
    with pytest.raises(SignedEventError) as refused:
        read_incoming_event(current.token(old), cache, now=NOW)
    assert refused.value.reason is SignedEventFailure.EXPIRED


def test_a_signed_event_without_exp_or_iat_is_bounded_by_its_own_event_time(
    canvas_keys: tuple[Signer, Signer], cache: JwksCache
) -> None:
    current, _ = canvas_keys
    claims = event_claims(lifetime=None)
    del claims["iat"]
    event_time = parse_event(claims).event.event_time  # type: ignore[union-attr]
    in_time = event_time + timedelta(seconds=SIGNED_EVENT_MAX_AGE_SECONDS - 60)
    assert read_incoming_event(current.token(claims), cache, now=in_time).signed
    with pytest.raises(SignedEventError) as refused:
        read_incoming_event(current.token(claims), cache, now=event_time + timedelta(days=1))
    assert refused.value.reason is SignedEventFailure.EXPIRED
    with pytest.raises(SignedEventError) as early:
        read_incoming_event(current.token(claims), cache, now=event_time - timedelta(hours=1))
    assert early.value.reason is SignedEventFailure.NOT_YET_VALID


def test_a_signed_event_without_exp_iat_or_event_time_is_refused(
    canvas_keys: tuple[Signer, Signer], cache: JwksCache
) -> None:
    claims = event_claims(lifetime=None)
    del claims["iat"], claims["metadata"]["event_time"]
    with pytest.raises(SignedEventError) as refused:
        read_incoming_event(canvas_keys[0].token(claims), cache, now=NOW)
    assert refused.value.reason is SignedEventFailure.INVALID_CLAIMS


def test_a_token_is_checked_as_of_the_time_it_is_given(
    canvas_keys: tuple[Signer, Signer], cache: JwksCache
) -> None:
    """The consumer passes the time SQS queued the token, so a backlog does not expire a verified event."""
    token = canvas_keys[0].token(fresh_claims())
    queued_at = NOW + timedelta(minutes=1)
    assert read_incoming_event(token, cache, now=queued_at).signed
    with pytest.raises(SignedEventError):
        read_incoming_event(token, cache, now=NOW + timedelta(hours=1))


# -- hostile bodies ------------------------------------------------------------------------------------
def test_deeply_nested_json_is_unreadable_not_a_recursion_error(
    canvas_keys: tuple[Signer, Signer], cache: JwksCache
) -> None:
    nested = "[" * 20_000 + "]" * 20_000
    with pytest.raises(UnreadableEventError, match="nested too deeply"):
        read_incoming_event(nested, cache)
    header, _, signature = canvas_keys[0].token(fresh_claims()).split(".")
    payload = base64.urlsafe_b64encode(nested.encode()).rstrip(b"=").decode()
    with pytest.raises(UnreadableEventError):  # a token whose claims nest too deeply is no token
        read_incoming_event(f"{header}.{payload}.{signature}", cache)


def test_an_oversize_event_is_refused_before_it_is_parsed(cache: JwksCache, jwks_server: JwksServer) -> None:
    with pytest.raises(EventTooLargeError):
        read_incoming_event("{" + " " * MAX_EVENT_BYTES + "}", cache)
    assert jwks_server.fetches == 0


# -- dedupe -------------------------------------------------------------------------------------------
def test_dedupe_keys_are_per_tenant_and_an_unsigned_event_cannot_take_a_verified_ones() -> None:
    claims = event_claims()
    claims["metadata"]["event_id"] = "evt-1"
    real = parse_event(claims).event
    claims["body"]["course_id"] = "999"  # forged: the real event's id on another course
    forged = parse_event(claims).event
    assert real is not None and forged is not None

    def key(tenant: str, origin: EventOrigin, event: Any) -> str:
        return TenantEvent(tenant_id=tenant, origin=origin, event=event).dedupe_key

    assert key("a", EventOrigin.SIGNED, real) == key("a", EventOrigin.DATA_SERVICES, real)
    assert key("a", EventOrigin.SIGNED, real) != key("b", EventOrigin.SIGNED, real)
    assert key("a", EventOrigin.UNSIGNED, forged) != key("a", EventOrigin.SIGNED, real)
    assert key("a", EventOrigin.UNSIGNED, forged) != key("a", EventOrigin.UNSIGNED, real)
    assert key("a", EventOrigin.UNSIGNED, real) == key("a", EventOrigin.UNSIGNED, real)  # a redelivery
