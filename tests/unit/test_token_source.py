"""The token source's rules, against an in-memory token store and a scripted token endpoint."""

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from pydantic import SecretStr

from rostersync.canvas.errors import AuthorizationError, OAuthError
from rostersync.canvas.oauth import OAuthClient
from rostersync.canvas.tokens import SharedToken, TenantTokenSource

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@dataclass
class MemoryStore:
    token: SharedToken
    lock_holder: str | None = None
    refused: str | None = None
    lock_taken_by_other_until_reads: int = 0  # another worker holds the lock for this many of our reads
    token_after_other_refresh: SharedToken | None = None
    reads: int = 0

    def read(self, *, fresh: bool) -> SharedToken:
        self.reads += 1
        if self.lock_taken_by_other_until_reads and self.reads >= self.lock_taken_by_other_until_reads:
            assert self.token_after_other_refresh is not None
            self.token = self.token_after_other_refresh
        return self.token

    def save_access_token(self, access_token: str, issued_at: datetime, expires_at: datetime) -> None:
        self.token = replace(
            self.token, access_token=access_token, issued_at=issued_at, expires_at=expires_at
        )

    def acquire_refresh_lock(self, holder: str, lease_seconds: int) -> bool:
        if self.lock_taken_by_other_until_reads or self.lock_holder is not None:
            return False
        self.lock_holder = holder
        return True

    def release_refresh_lock(self, holder: str) -> None:
        if self.lock_holder == holder:
            self.lock_holder = None

    def refusal(self) -> str | None:
        return self.refused

    def record_refusal(self, reason: str) -> None:
        self.refused = reason


@dataclass
class Grant:
    access_token: SecretStr
    expires_in: int


@dataclass
class TokenEndpoint:
    refusal: OAuthError | None = None
    calls: list[str] = field(default_factory=list)

    def refresh(self, refresh_token: str) -> Grant:
        self.calls.append(refresh_token)
        if self.refusal is not None:
            raise self.refusal
        return Grant(SecretStr(f"new-{len(self.calls)}"), 3600)


def token(lifetime: timedelta, left: timedelta, access: str = "old") -> SharedToken:
    expires = NOW + left
    return SharedToken(
        access_token=access, refresh_token="refresh", expires_at=expires, issued_at=expires - lifetime
    )


def source(store: MemoryStore, endpoint: TokenEndpoint) -> TenantTokenSource:
    return TenantTokenSource(
        store,
        oauth=cast(OAuthClient, endpoint),
        refresh_margin_seconds=300,
        clock=NOW.timestamp,
        sleep=lambda _: None,
    )


@pytest.mark.parametrize(
    ("lifetime", "left", "refreshed"),
    [
        (timedelta(hours=1), timedelta(minutes=6), False),  # outside the 5-minute margin
        (timedelta(hours=1), timedelta(minutes=4), True),  # inside it
        (timedelta(seconds=20), timedelta(seconds=10), False),  # a short token: a quarter of 20 s is 5 s
        (timedelta(seconds=20), timedelta(seconds=4), True),
    ],
)
def test_the_refresh_margin_scales_with_the_tokens_lifetime(
    lifetime: timedelta, left: timedelta, refreshed: bool
) -> None:
    store, endpoint = MemoryStore(token(lifetime, left)), TokenEndpoint()
    got = source(store, endpoint).access_token()
    assert (endpoint.calls == ["refresh"]) is refreshed
    assert got == ("new-1" if refreshed else "old")
    if refreshed:
        assert store.token.expires_at == NOW + timedelta(hours=1) and store.token.issued_at == NOW
        assert store.token.refresh_token == "refresh"  # Canvas keeps the first refresh token


def test_a_rejected_token_is_renewed_even_before_its_expiry() -> None:
    store, endpoint = MemoryStore(token(timedelta(hours=1), timedelta(minutes=50))), TokenEndpoint()
    assert source(store, endpoint).renew("old") == "new-1"


def test_a_worker_waiting_on_the_lock_takes_the_other_workers_token() -> None:
    fresh = token(timedelta(hours=1), timedelta(hours=1), access="theirs")
    store = MemoryStore(
        token(timedelta(hours=1), timedelta(seconds=-1)), lock_taken_by_other_until_reads=3,
        token_after_other_refresh=fresh,
    )  # fmt: skip
    endpoint = TokenEndpoint()
    assert source(store, endpoint).access_token() == "theirs"
    assert endpoint.calls == []


def test_a_grant_refused_earlier_is_not_refreshed_again() -> None:
    store = MemoryStore(token(timedelta(hours=1), timedelta(seconds=-1)), refused="token refresh refused")
    endpoint = TokenEndpoint()
    with pytest.raises(AuthorizationError, match="authorize again"):
        source(store, endpoint).access_token()
    assert endpoint.calls == [] and store.lock_holder is None


def test_a_dead_grant_is_recorded_once_and_the_lock_released() -> None:
    store = MemoryStore(token(timedelta(hours=1), timedelta(seconds=-1)))
    endpoint = TokenEndpoint(refusal=OAuthError("invalid_grant", "revoked", status=400))
    with pytest.raises(AuthorizationError, match="invalid_grant"):
        source(store, endpoint).access_token()
    assert store.refused == "token refresh refused: invalid_grant" and store.lock_holder is None
    with pytest.raises(AuthorizationError):
        source(store, endpoint).access_token()
    assert len(endpoint.calls) == 1


def test_no_refresh_token_means_authorizing_again() -> None:
    store = MemoryStore(replace(token(timedelta(hours=1), timedelta(seconds=-1)), refresh_token=None))
    with pytest.raises(AuthorizationError, match="no refresh token"):
        source(store, TokenEndpoint()).access_token()
    assert store.refused == "no refresh token stored"
