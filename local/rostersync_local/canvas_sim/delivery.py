"""Delivery of live events: the event log, loss/duplication/reordering, SQS and HTTPS senders, JWS signing.

Locking: :class:`LiveEventDispatcher` has its own lock (never ``state.lock``). Change handlers publish while
holding ``state.lock`` (order: state lock -> dispatcher lock); the background sender thread and the
lock-free admin handlers (log, flush, JWKS) take only the dispatcher lock, so a slow receiver never stalls
the simulator.

Randomness: ``random.Random(live_events_seed)``. For every deliverable event, in generation order, exactly
two numbers are drawn (loss, then duplication); when ``reorder_window`` > 1, each full window (and each
flush) is shuffled with the same generator. So the same seed and the same sequence of changes give the
same lost/duplicated events and the same delivery order.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from .config import SimulatorConfig
from .live_events import JsonDict, LiveEvent

logger = logging.getLogger("rostersync_local.canvas_sim")

TOKEN_LIFETIME_SECONDS = 600
JWS_ALGORITHM = "RS256"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


# ------------------------------------------------------------------------------------------ signing
@dataclass
class SigningKey:
    kid: str
    private_key: Any  # cryptography RSAPrivateKey

    def public_jwk(self) -> JsonDict:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": JWS_ALGORITHM,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }


class Signer:
    """RS256 keys like Canvas's live-events JWKS: it serves the previous, current and next key.

    Keys are made on first use (2048-bit RSA). :meth:`rotate` makes the next key current, keeps the old
    current one as "previous" (still in the JWKS until the following rotation) and creates a new "next".
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = 0
        self._previous: SigningKey | None = None
        self._current: SigningKey | None = None
        self._next: SigningKey | None = None

    def _new_key(self) -> SigningKey:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._counter += 1
        kid = f"canvas-sim-{self._counter}-{secrets.token_hex(4)}"
        return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def _ensure(self) -> tuple[SigningKey, SigningKey]:
        if self._current is None or self._next is None:
            self._current = self._new_key()
            self._next = self._new_key()
        return self._current, self._next

    @property
    def current_kid(self) -> str:
        with self._lock:
            return self._ensure()[0].kid

    def jwks(self) -> JsonDict:
        with self._lock:
            current, upcoming = self._ensure()
            keys = [key for key in (self._previous, current, upcoming) if key is not None]
            return {"keys": [key.public_jwk() for key in keys]}

    def rotate(self) -> JsonDict:
        with self._lock:
            current, upcoming = self._ensure()
            self._previous, self._current, self._next = current, upcoming, self._new_key()
            return {"previous_kid": current.kid, "current_kid": upcoming.kid, "next_kid": self._next.kid}

    def sign(self, event: JsonDict, now: float) -> str:
        """A compact JWS (JWT): header ``{"alg": "RS256", "typ": "JWT", "kid"}``; claims = the event's own
        top-level keys plus ``iat``, ``exp`` (iat + 600 s) and ``jti``."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        with self._lock:
            key = self._ensure()[0]
        header = {"alg": JWS_ALGORITHM, "typ": "JWT", "kid": key.kid}
        issued = int(now)
        claims = {**event, "iat": issued, "exp": issued + TOKEN_LIFETIME_SECONDS, "jti": str(uuid.uuid4())}
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":"), ensure_ascii=False).encode())
            for part in (header, claims)
        )
        signature = key.private_key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


# ------------------------------------------------------------------------------------------ the log
@dataclass
class LogEntry:
    seq: int
    event_name: str
    format: str  # the format of ``payload``
    payload: JsonDict
    skipped: bool = False  # Caliper chosen but Canvas has no Caliper form of this event: never sent
    lost: bool = False
    duplicated: bool = False
    delivered: int = 0  # successful sends (a duplicate, or SQS + HTTP, count each)
    failed: int = 0  # sends given up after all retries
    errors: list[str] = field(default_factory=list)

    def public(self) -> JsonDict:
        return {
            "seq": self.seq,
            "event_name": self.event_name,
            "delivered": self.delivered,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "skipped": self.skipped,
            "failed": self.failed,
            "errors": self.errors[-3:],
            "format": self.format,
            "payload": self.payload,
        }


class LiveEventDispatcher:
    """Records every generated event and delivers it from one background thread (see the module doc)."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float]) -> None:
        self.config = config  # the simulator's live config object
        self.clock = clock
        self.signer = Signer()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._log: list[LogEntry] = []
        self._buffer: list[int] = []  # seqs held back for reordering
        self._queue: deque[int] = deque()  # seqs released for sending, in order
        self._in_flight = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._rng = random.Random(config.effective_live_events_seed)  # noqa: S311 - reproducible simulation
        self._sqs_clients: dict[tuple[str | None, str], Any] = {}

    # ------------------------------------------------------------------ publishing
    def reseed(self) -> None:
        with self._lock:
            self._rng.seed(self.config.effective_live_events_seed)

    def publish(self, events: list[LiveEvent]) -> list[int]:
        """Log ``events`` (in order) and hand them to delivery; returns their seqs."""
        config = self.config
        seqs: list[int] = []
        with self._lock:
            deliver = bool(config.live_events_sqs_queue_url or config.live_events_http_url)
            for event in events:
                caliper = config.live_events_format == "caliper"
                skipped = caliper and event.caliper is None
                payload = event.caliper if caliper and event.caliper is not None else event.canvas
                entry = LogEntry(
                    len(self._log) + 1,
                    event.name,
                    "caliper" if caliper and not skipped else "canvas",
                    payload,
                    skipped=skipped,
                )
                self._log.append(entry)
                seqs.append(entry.seq)
                if skipped:
                    continue
                entry.lost = self._rng.random() < config.live_events_loss_rate
                entry.duplicated = self._rng.random() < config.live_events_duplicate_rate and not entry.lost
                if entry.lost or not deliver:
                    continue
                for _ in range(2 if entry.duplicated else 1):
                    self._stage(entry.seq)
        return seqs

    def _stage(self, seq: int) -> None:
        window = self.config.live_events_reorder_window
        if window <= 1:
            self._release([seq])
            return
        self._buffer.append(seq)
        if len(self._buffer) >= window:
            self._release_buffer()

    def _release_buffer(self) -> int:
        held, self._buffer = self._buffer, []
        self._rng.shuffle(held)
        self._release(held)
        return len(held)

    def _release(self, seqs: list[int]) -> None:
        if not seqs:
            return
        self._queue.extend(seqs)
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="canvas-sim-live-events", daemon=True)
            self._thread.start()
        self._changed.notify_all()

    # ---------------------------------------------------------------- introspection
    def log(self, since: int = 0) -> list[JsonDict]:
        with self._lock:
            return [entry.public() for entry in self._log[since:]]

    def stats(self) -> JsonDict:
        with self._lock:
            return {
                "generated": len(self._log),
                "delivered": sum(e.delivered for e in self._log),
                "lost": sum(e.lost for e in self._log),
                "duplicated": sum(e.duplicated for e in self._log),
                "skipped": sum(e.skipped for e in self._log),
                "failed": sum(e.failed for e in self._log),
                "buffered": len(self._buffer),
                "pending": len(self._queue) + self._in_flight,
            }

    def flush(self, timeout: float) -> JsonDict:
        """Release the reorder buffer (shuffled) and wait up to ``timeout`` s until every send is done."""
        deadline = time.monotonic() + timeout
        with self._lock:
            released = self._release_buffer()
            while (self._queue or self._in_flight) and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.5))
            pending = len(self._queue) + self._in_flight
        return {"released": released, "pending": pending, "drained": pending == 0}

    def close(self) -> None:
        """Stop the sender (what is still queued is dropped)."""
        with self._lock:
            self._closed = True
            self._queue.clear()
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # ---------------------------------------------------------------------- sending
    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._changed.wait(0.5)
                if self._closed:
                    return
                seq = self._queue.popleft()
                entry = self._log[seq - 1]
                self._in_flight += 1
            delivered, failed, errors = self._send(entry.payload)
            with self._lock:
                entry.delivered += delivered
                entry.failed += failed
                entry.errors.extend(errors)
                self._in_flight -= 1
                self._changed.notify_all()

    def _send(self, payload: JsonDict) -> tuple[int, int, list[str]]:
        config = self.config
        targets: list[tuple[str, Callable[[], None]]] = []
        if config.live_events_sqs_queue_url:
            url, endpoint = config.live_events_sqs_queue_url, config.live_events_aws_endpoint_url
            targets.append(("sqs", lambda: self._send_sqs(url, endpoint, payload)))
        if config.live_events_http_url:
            http_url, signed = config.live_events_http_url, config.live_events_signed
            targets.append(("http", lambda: self._send_http(http_url, payload, signed=signed)))
        delivered, failed, errors = 0, 0, list[str]()
        for name, send in targets:
            for attempt in range(config.live_events_retries + 1):
                if self._closed:
                    return delivered, failed, errors
                try:
                    send()
                except Exception as exc:  # any failure is a failed try, like Canvas's
                    errors.append(f"{name} try {attempt + 1}: {type(exc).__name__}: {exc}"[:300])
                    logger.debug("live event delivery to %s failed: %s", name, exc)
                    if attempt < config.live_events_retries:
                        time.sleep(config.live_events_retry_backoff_seconds * 2**attempt)
                    continue
                delivered += 1
                break
            else:
                failed += 1
        return delivered, failed, errors

    def _sqs_client(self, endpoint: str | None) -> Any:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        key = (endpoint, region)
        client = self._sqs_clients.get(key)
        if client is None:
            import boto3

            options: dict[str, Any] = {"region_name": region}
            if endpoint:
                options["endpoint_url"] = endpoint
            if not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
                options.update(aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
            client = boto3.client("sqs", **options)
            self._sqs_clients[key] = client
        return client

    def _send_sqs(self, queue_url: str, endpoint: str | None, payload: JsonDict) -> None:
        body = json.dumps(payload, ensure_ascii=False)
        self._sqs_client(endpoint).send_message(QueueUrl=queue_url, MessageBody=body)

    def _send_http(self, url: str, payload: JsonDict, *, signed: bool) -> None:
        if signed:
            data = self.signer.sign(payload, self.clock()).encode("ascii")
            content_type = "application/jwt"
        else:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            content_type = "application/json"
        response = requests.post(
            url,
            data=data,
            headers={"Content-Type": content_type},
            timeout=self.config.live_events_http_timeout_seconds,
        )
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"HTTP {response.status_code}")
