"""Mutable simulator state: institution, OAuth store, stats, faults, assignments and submissions.

All of it is guarded by ``SimulatorState.lock`` (one re-entrant lock); the HTTP app holds it for the whole
handling of a request, in-process callers should hold it while they read or change anything.
"""

from __future__ import annotations

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
from .generate import build_institution
from .model import Institution
from .serialize import Serializer
from .throttle import Throttle, UnlimitedThrottle

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

    def register_key(self, name: str, redirect_uri: str, scopes: tuple[str, ...]) -> DeveloperKey:
        key = DeveloperKey(str(self._next_key), _random_string(64), name, redirect_uri, scopes)
        self._next_key += 1
        self.developer_keys[key.client_id] = key
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
        self._by_access[grant.access_token] = grant.id
        self._by_refresh[grant.refresh_token] = grant.id
        return grant

    def refresh(self, grant: Grant, now: float, ttl: int) -> Grant:
        """New access token string for ``grant``; the previous one stops working."""
        self._by_access.pop(grant.access_token, None)
        grant.access_token = f"1~{_random_string(64)}"
        grant.issued_at = now
        grant.expires_at = now + ttl
        self._by_access[grant.access_token] = grant.id
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

    def expire_all(self, now: float) -> int:
        for grant in self.grants.values():
            grant.expires_at = min(grant.expires_at, now)
        return len(self.grants)


# ------------------------------------------------------------------------------------- stats, faults
class Stats:
    def __init__(self) -> None:
        self.requests_total = 0
        self.by_route: Counter[str] = Counter()

    def record(self, route: str) -> None:
        self.requests_total += 1
        self.by_route[route] += 1

    def reset(self) -> None:
        self.requests_total = 0
        self.by_route.clear()

    def snapshot(self) -> dict[str, Any]:
        return {"requests_total": self.requests_total, "by_route": dict(sorted(self.by_route.items()))}


@dataclass
class Fault:
    status: int
    path_regex: re.Pattern[str]
    remaining: int
    method: str | None = None
    kind: str = "error"  # "error" (Canvas error JSON) or "throttle" (Canvas rate-limit response)

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
        self.throttle: Throttle = throttle or UnlimitedThrottle()
        self.assignments: dict[int, Assignment] = {}
        self.submissions: dict[tuple[int, int], Submission] = {}
        self._next_assignment_id = 9001
        self._next_submission_id = 700001
        self._next_comment_id = 1
        self.error_report_id = 12345

    def now(self) -> float:
        return self.clock()

    def serializer(self, base_url: str) -> Serializer:
        return Serializer(self.institution, base_url.rstrip("/"), self.now())

    def ground_truth(self, base_url: str) -> dict[str, Any]:
        """The whole institution as the API shows it (``base_url`` is used for html_url fields)."""
        with self.lock:
            return self.serializer(base_url).ground_truth()

    # ------------------------------------------------------------------ faults
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
