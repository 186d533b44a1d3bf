"""Access tokens of one tenant: shared by every worker, refreshed ahead of expiry by one at a time.

The Canvas room speaks only HTTP: where the shared token lives (a secret, a lock, the tenant's status) is
behind `TokenStore`, which `connection.py` fills from the data-access layer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from rostersync.canvas.errors import AuthorizationError, CanvasUnavailableError, OAuthError

if TYPE_CHECKING:  # made by rostersync.connection, which imports the HTTP client only to make one
    from rostersync.canvas.oauth import OAuthClient

REFRESH_LEASE_SECONDS = 30
WAIT_FOR_OTHER_REFRESHER_SECONDS = 15
# A token is refreshed once this share of its lifetime is left, or the configured margin, whichever is
# less: a fixed margin longer than a short-lived token's life would refresh it on every request.
REFRESH_AT_LIFETIME_SHARE_LEFT = 0.25


@dataclass(frozen=True)
class SharedToken:
    """The tenant's current grant as its workers share it."""

    access_token: str | None
    refresh_token: str | None
    expires_at: datetime | None
    issued_at: datetime | None


class TokenStore(Protocol):
    """Where one tenant's workers share its tokens, and learn that Canvas refused its grant."""

    def read(self, *, fresh: bool) -> SharedToken: ...

    def save_access_token(self, access_token: str, issued_at: datetime, expires_at: datetime) -> None: ...

    def acquire_refresh_lock(self, holder: str, lease_seconds: int) -> bool: ...

    def release_refresh_lock(self, holder: str) -> None: ...

    def refusal(self) -> str | None:
        """Why Canvas refused the grant (the tenant must authorize again), or None."""
        ...

    def record_refusal(self, reason: str) -> None: ...


def refresh_margin(token: SharedToken, configured: timedelta) -> timedelta:
    if token.expires_at is None or token.issued_at is None:
        return configured
    lifetime = token.expires_at - token.issued_at
    return min(configured, max(lifetime, timedelta(0)) * REFRESH_AT_LIFETIME_SHARE_LEFT)


class TenantTokenSource:
    def __init__(
        self,
        store: TokenStore,
        *,
        oauth: OAuthClient,
        refresh_margin_seconds: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._oauth = oauth
        self._margin = timedelta(seconds=refresh_margin_seconds)
        self._clock = clock
        self._sleep = sleep

    def access_token(self) -> str:
        usable = self._usable_token(self._store.read(fresh=False), rejected=None)
        return usable if usable is not None else self._refresh(rejected=None)

    def renew(self, rejected_token: str) -> str:
        # A refresh elsewhere kills our copy: re-read the shared token before refreshing it ourselves.
        usable = self._usable_token(self._store.read(fresh=True), rejected=rejected_token)
        return usable if usable is not None else self._refresh(rejected=rejected_token)

    def _usable_token(self, token: SharedToken, rejected: str | None) -> str | None:
        if token.access_token is None or token.expires_at is None:
            return None
        now = datetime.fromtimestamp(self._clock(), UTC)
        if token.access_token == rejected or token.expires_at - refresh_margin(token, self._margin) <= now:
            return None
        return token.access_token

    def _refresh(self, rejected: str | None) -> str:
        holder = uuid.uuid4().hex
        deadline = self._clock() + WAIT_FOR_OTHER_REFRESHER_SECONDS
        while not self._store.acquire_refresh_lock(holder, REFRESH_LEASE_SECONDS):
            # Another worker is refreshing: wait for its token rather than refreshing twice.
            self._sleep(0.25)
            usable = self._usable_token(self._store.read(fresh=True), rejected)
            if usable is not None:
                return usable
            if self._clock() > deadline:
                raise CanvasUnavailableError("another worker holds the token refresh lock too long")
        try:
            token = self._store.read(fresh=True)
            usable = self._usable_token(token, rejected)
            if usable is not None:
                return usable
            # A worker that held the lock before us may have had the grant refused: one refusal settles it.
            refused = self._store.refusal()
            if refused is not None:
                raise AuthorizationError(f"the tenant must authorize again ({refused})")
            return self._refresh_holding_lock(token)
        finally:
            self._store.release_refresh_lock(holder)

    def _refresh_holding_lock(self, token: SharedToken) -> str:
        if token.refresh_token is None:
            self._store.record_refusal("no refresh token stored")
            raise AuthorizationError("the tenant has no refresh token; authorize again")
        try:
            grant = self._oauth.refresh(token.refresh_token)
        except OAuthError as error:
            if not error.grant_is_dead:
                raise
            self._store.record_refusal(f"token refresh refused: {error.error}")
            raise AuthorizationError(
                f"Canvas refused the token refresh ({error.error}); authorize again"
            ) from error
        issued_at = datetime.fromtimestamp(self._clock(), UTC)
        # Canvas sends no new refresh token on refresh: the stored one stays valid, so it is kept.
        access_token = grant.access_token.get_secret_value()
        self._store.save_access_token(
            access_token, issued_at, issued_at + timedelta(seconds=grant.expires_in or 3600)
        )
        return access_token


class FixedTokenSource:
    """A token that was just issued, used once before it is stored (account discovery at connect)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def access_token(self) -> str:
        return self._token

    def renew(self, rejected_token: str) -> str:
        raise AuthorizationError("Canvas rejected a token it has just issued")
