"""Mutable simulator state: institution, OAuth store, stats, faults, assignments and submissions.

All of it is guarded by ``SimulatorState.lock`` (one re-entrant lock). The HTTP app holds it while it changes
or reads state (stats, faults, authentication and throttle bookkeeping, running a handler), never while a
request waits (latency, stalls); in-process callers should hold it while they read or change anything.
"""

from __future__ import annotations

import random
import re
import secrets
import string
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import SimulatorConfig
from .delivery import LiveEventDispatcher
from .generate import build_institution
from .live_events import parse_ms
from .model import Institution
from .serialize import Serializer
from .throttle import LeakyBucketThrottle, Throttle

CODE_TTL_SECONDS = 600
_TOKEN_ALPHABET = string.ascii_letters + string.digits


def _random_string(length: int) -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))


# --------------------------------------------------------------------------------------------- OAuth
@dataclass
class DeveloperKey:
    client_id: str
    client_secret: str = field(repr=False)
    name: str
    redirect_uri: str
    scopes: tuple[str, ...]

    def public(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "name": self.name, "redirect_uri": self.redirect_uri,
                "scopes": list(self.scopes)}  # fmt: skip


@dataclass
class AuthCode:
    code: str = field(repr=False)
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    user_id: int
    created_at: float


@dataclass
class PendingAuthorization:
    """An authorize request waiting for the user's click on the approve page."""

    id: str = field(repr=False)
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    created_at: float


@dataclass
class Grant:
    """One authorization of a developer key by the user: a refresh token and its current access token."""

    id: int
    client_id: str
    user_id: int
    scopes: frozenset[str]
    refresh_token: str = field(repr=False)
    access_token: str = field(repr=False)
    issued_at: float
    expires_at: float
    refresh_count: int = 0


class TokenStore:
    """Developer keys, authorization codes and grants. Callers hold the state lock."""

    def __init__(self) -> None:
        self.developer_keys: dict[str, DeveloperKey] = {}
        self.codes: dict[str, AuthCode] = {}
        self.pending: dict[str, PendingAuthorization] = {}
        self.grants: dict[int, Grant] = {}
        self._by_access: dict[str, int] = {}
        self._by_refresh: dict[str, int] = {}
        self._next_key = 10000000000001
        self._next_grant = 1
        # Every client secret, code and token ever handed out (rotated ones too): tests scan logs for them.
        self.issued_secrets: list[str] = []

    def register_key(self, name: str, redirect_uri: str, scopes: tuple[str, ...]) -> DeveloperKey:
        key = DeveloperKey(str(self._next_key), _random_string(64), name, redirect_uri, scopes)
        self._next_key += 1
        self.developer_keys[key.client_id] = key
        self.issued_secrets.append(key.client_secret)
        return key

    def new_pending(
        self, key: DeveloperKey, redirect_uri: str, scopes: tuple[str, ...], state: str | None, now: float
    ) -> PendingAuthorization:
        pending = PendingAuthorization(_random_string(32), key.client_id, redirect_uri, scopes, state, now)
        self.pending[pending.id] = pending
        return pending

    def take_pending(self, pending_id: str, now: float) -> PendingAuthorization | None:
        pending = self.pending.pop(pending_id, None)
        if pending is None or now - pending.created_at > CODE_TTL_SECONDS:
            return None
        return pending

    def issue_code(
        self, client_id: str, redirect_uri: str, scopes: tuple[str, ...], user_id: int, now: float
    ) -> AuthCode:
        code = AuthCode(_random_string(64), client_id, redirect_uri, scopes, user_id, now)
        self.codes[code.code] = code
        self.issued_secrets.append(code.code)
        return code

    def find_code(self, code: str, now: float) -> AuthCode | None:
        found = self.codes.get(code)
        if found is not None and now - found.created_at > CODE_TTL_SECONDS:
            del self.codes[code]
            return None
        return found

    def consume_code(self, code: str) -> None:
        self.codes.pop(code, None)

    def issue_grant(self, code: AuthCode, now: float, ttl: int) -> Grant:
        grant = Grant(
            id=self._next_grant,
            client_id=code.client_id,
            user_id=code.user_id,
            scopes=frozenset(code.scopes),
            refresh_token=f"1~{_random_string(64)}",
            access_token=f"1~{_random_string(64)}",
            issued_at=now,
            expires_at=now + ttl,
        )
        self._next_grant += 1
        self.grants[grant.id] = grant
        self.issued_secrets += [grant.access_token, grant.refresh_token]
        self._by_access[grant.access_token] = grant.id
        self._by_refresh[grant.refresh_token] = grant.id
        return grant

    def refresh(self, grant: Grant, now: float, ttl: int) -> Grant:
        """New access token string for ``grant``; the previous one stops working."""
        self._by_access.pop(grant.access_token, None)
        grant.access_token = f"1~{_random_string(64)}"
        grant.issued_at = now
        grant.expires_at = now + ttl
        grant.refresh_count += 1
        self._by_access[grant.access_token] = grant.id
        self.issued_secrets.append(grant.access_token)
        return grant

    def by_access_token(self, token: str) -> Grant | None:
        grant_id = self._by_access.get(token)
        return self.grants.get(grant_id) if grant_id is not None else None

    def by_refresh_token(self, token: str) -> Grant | None:
        grant_id = self._by_refresh.get(token)
        return self.grants.get(grant_id) if grant_id is not None else None

    def revoke(self, grant: Grant) -> None:
        self.grants.pop(grant.id, None)
        self._by_access.pop(grant.access_token, None)
        self._by_refresh.pop(grant.refresh_token, None)

    def grants_of(self, client_id: str) -> list[Grant]:
        return [grant for grant in self.grants.values() if grant.client_id == client_id]

    def set_key_scopes(self, key: DeveloperKey, scopes: tuple[str, ...]) -> int:
        """Replace the key's scopes. Removing any scope deletes every grant of the key (Canvas invalidates
        their tokens); adding scopes leaves existing tokens alone (and does not extend them). Returns the
        number of grants deleted."""
        removed = set(key.scopes) - set(scopes)
        key.scopes = scopes
        if not removed:
            return 0
        doomed = self.grants_of(key.client_id)
        for grant in doomed:
            self.revoke(grant)
        return len(doomed)

    def expire_all(self, now: float) -> int:
        for grant in self.grants.values():
            grant.expires_at = min(grant.expires_at, now)
        return len(self.grants)


# ------------------------------------------------------------------------------------- stats, faults
FAULT_KINDS = ("error", "throttle", "timeout", "reset")


class Stats:
    """Counts of tracked requests (``/api/v1/*``, ``/login/oauth2/*``) by route, of requests the leaky bucket
    refused, and of injected faults by kind (one-shot ``/_sim/faults`` rules and random faults alike); the
    API requests' total ``X-Request-Cost`` and latency (what a client's ceiling is computed from), and the
    most authenticated API requests that were ever running at once (admitted, not yet answered)."""

    def __init__(self) -> None:
        self.requests_total = 0
        self.by_route: Counter[str] = Counter()
        self.throttled_by_route: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.costed_requests = 0
        self.cost_total = 0.0
        self.latency_seconds_total = 0.0
        self.in_flight = 0
        self.peak_in_flight = 0

    def record_cost(self, cost: float, latency_seconds: float) -> None:
        self.costed_requests += 1
        self.cost_total += cost
        self.latency_seconds_total += latency_seconds

    def enter_flight(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave_flight(self) -> None:
        self.in_flight -= 1

    def record(self, route: str) -> None:
        self.requests_total += 1
        self.by_route[route] += 1

    def record_throttled(self, route: str) -> None:
        self.throttled_by_route[route] += 1

    def record_fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def reset(self) -> None:
        self.requests_total = 0
        self.by_route.clear()
        self.throttled_by_route.clear()
        self.faults.clear()
        self.costed_requests = 0
        self.cost_total = 0.0
        self.latency_seconds_total = 0.0
        self.peak_in_flight = self.in_flight

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "by_route": dict(sorted(self.by_route.items())),
            "throttled_total": sum(self.throttled_by_route.values()),
            "throttled_by_route": dict(sorted(self.throttled_by_route.items())),
            "faults_total": {kind: self.faults[kind] for kind in FAULT_KINDS},
            "costed_requests": self.costed_requests,
            "request_cost_total": round(self.cost_total, 6),
            "latency_seconds_total": round(self.latency_seconds_total, 6),
            "peak_in_flight": self.peak_in_flight,
        }


@dataclass
class Fault:
    status: int
    path_regex: re.Pattern[str]
    remaining: int
    method: str | None = None
    # "error" (Canvas error JSON with ``status``), "throttle" (Canvas rate-limit response with ``status``),
    # "timeout" (stall ``timeout_stall_seconds``, then answer normally) or "reset" (close, no response)
    kind: str = "error"

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.remaining > 0 and self.path_regex.search(path) is not None

    def public(self) -> dict[str, Any]:
        return {"status": self.status, "path_regex": self.path_regex.pattern, "count": self.remaining,
                "method": self.method, "kind": self.kind}  # fmt: skip


# --------------------------------------------------------------------------- assignments, submissions
@dataclass
class Assignment:
    id: int
    course_id: int
    name: str
    position: int
    created_at: str
    updated_at: str
    description: str | None = None
    points_possible: float | None = None
    grading_type: str = "points"
    submission_types: list[str] = field(default_factory=lambda: ["none"])
    allowed_extensions: list[str] = field(default_factory=list)
    published: bool = False
    due_at: str | None = None
    lock_at: str | None = None
    unlock_at: str | None = None
    sis_assignment_id: str | None = None
    integration_id: str | None = None
    integration_data: dict[str, Any] = field(default_factory=dict)
    omit_from_final_grade: bool = False
    hide_in_gradebook: bool = False
    post_to_sis: bool = False
    post_manually: bool = False
    only_visible_to_overrides: bool = False
    allowed_attempts: int = -1


@dataclass
class Submission:
    id: int
    assignment_id: int
    user_id: int
    anonymous_id: str
    grade: str | None = None
    score: float | None = None
    excused: bool = False
    graded_at: str | None = None
    grader_id: int | None = None
    workflow_state: str = "unsubmitted"
    comments: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- state
class SimulatorState:
    """Everything the simulator knows. ``institution`` is the generated data, ``tokens`` the OAuth store."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        clock: Callable[[], float] = time.time,
        throttle: Throttle | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.config = config
        self.clock = clock
        self.institution: Institution = build_institution(config.seed, config.courses, config.reference_year)
        self.tokens = TokenStore()
        self.stats = Stats()
        self.faults: list[Fault] = []
        self.throttle: Throttle = throttle if throttle is not None else LeakyBucketThrottle(config)
        self.stopping = threading.Event()
        self.fault_rng = random.Random()  # noqa: S311 - reproducible simulation, not security
        self.latency_rng = random.Random()  # noqa: S311
        self.reseed_faults()
        self.assignments: dict[int, Assignment] = {}
        self.submissions: dict[tuple[int, int], Submission] = {}
        self._next_assignment_id = 9001
        self._next_submission_id = 700001
        self._next_comment_id = 1
        self.error_report_id = 12345
        # live events (/_sim/changes, /_sim/live_events)
        self.live_events = LiveEventDispatcher(config, clock)
        self.event_ids_rng = random.Random(config.seed + 0x5EED)  # noqa: S311 - request ids, Caliper ids
        self._last_change_ms = 0

    def change_ms(self, *previous: str | None) -> int:
        """A change's time in epoch milliseconds: the clock, but strictly later than every earlier change and
        than the ``previous`` timestamps (an object's old ``updated_at``). Callers hold the lock."""
        value = max(
            int(self.now() * 1000), self._last_change_ms + 1, *(parse_ms(p) + 1 for p in previous if p)
        )
        self._last_change_ms = value
        return value

    def close(self) -> None:
        """Stop background work (the live-event sender)."""
        self.live_events.close()

    def now(self) -> float:
        return self.clock()

    def serializer(self, base_url: str) -> Serializer:
        return Serializer(self.institution, base_url.rstrip("/"), self.now())

    def ground_truth(self, base_url: str) -> dict[str, Any]:
        """The whole institution as the API shows it (``base_url`` is used for html_url fields)."""
        with self.lock:
            return self.serializer(base_url).ground_truth()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (real time) unless the simulator is stopping. Never call it holding the lock."""
        if seconds > 0:
            self.stopping.wait(seconds)

    # ------------------------------------------------------------------ faults
    def reseed_faults(self) -> None:
        """Restart the random fault and latency sequences from ``config.fault_seed`` (or ``seed``)."""
        self.fault_rng.seed(self.config.effective_fault_seed)
        self.latency_rng.seed(self.config.effective_fault_seed + 1)

    def draw_fault(self) -> str | None:
        """The random fault of one ``/api/v1`` request: "error", "timeout", "reset" or None.

        Exactly one number is drawn per request while any rate is set, so a given ``fault_seed`` yields the
        same sequence of outcomes for the same sequence of requests.
        """
        config = self.config
        if config.fault_rate <= 0 and config.timeout_rate <= 0 and config.reset_rate <= 0:
            return None
        draw = self.fault_rng.random()
        for kind, rate in (("error", config.fault_rate), ("timeout", config.timeout_rate),
                           ("reset", config.reset_rate)):  # fmt: skip
            if draw < rate:
                return kind
            draw -= rate
        return None

    def draw_latency(self) -> float:
        """Seconds to delay one ``/api/v1`` request: ``latency_ms`` + uniform ``0..latency_jitter_ms``."""
        config = self.config
        delay_ms = config.latency_ms
        if config.latency_jitter_ms > 0:
            delay_ms += self.latency_rng.uniform(0.0, config.latency_jitter_ms)
        return delay_ms / 1000.0

    def add_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------- assignments
    def new_assignment_id(self) -> int:
        value = self._next_assignment_id
        self._next_assignment_id += 1
        return value

    def submission(self, assignment_id: int, user_id: int) -> Submission:
        key = (assignment_id, user_id)
        found = self.submissions.get(key)
        if found is None:
            anonymous = format((assignment_id * 7919 + user_id * 104729) % (36**5), "x")[:5].rjust(5, "0")
            found = Submission(self._next_submission_id, assignment_id, user_id, anonymous)
            self._next_submission_id += 1
            self.submissions[key] = found
        return found

    def new_comment_id(self) -> int:
        value = self._next_comment_id
        self._next_comment_id += 1
        return value
