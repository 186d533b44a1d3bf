"""Access tokens of one tenant: shared by every worker, refreshed ahead of expiry by one at a time."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from rostersync.canvas.errors import AuthorizationError, CanvasUnavailableError, OAuthError
from rostersync.canvas.oauth import OAuthClient
from rostersync.models import TenantStatus
from rostersync.store.secrets import TenantCredentials, TenantSecretStore
from rostersync.store.table import RosterTable

REFRESH_LEASE_SECONDS = 30
WAIT_FOR_OTHER_REFRESHER_SECONDS = 15
# A token is refreshed once this share of its lifetime is left, or the configured margin, whichever is
# less: a fixed margin longer than a short-lived token's life would refresh it on every request.
REFRESH_AT_LIFETIME_SHARE_LEFT = 0.25


def refresh_margin(credentials: TenantCredentials, configured: timedelta) -> timedelta:
    if credentials.access_token_expires_at is None or credentials.access_token_issued_at is None:
        return configured
    lifetime = credentials.access_token_expires_at - credentials.access_token_issued_at
    return min(configured, max(lifetime, timedelta(0)) * REFRESH_AT_LIFETIME_SHARE_LEFT)


class TenantTokenSource:
    def __init__(
        self,
        tenant_id: str,
        *,
        secrets: TenantSecretStore,
        table: RosterTable,
        oauth: OAuthClient,
        refresh_margin_seconds: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._tenant_id = tenant_id
        self._secrets = secrets
        self._table = table
        self._oauth = oauth
        self._margin = timedelta(seconds=refresh_margin_seconds)
        self._clock = clock
        self._sleep = sleep

    def access_token(self) -> str:
        credentials = self._secrets.read(self._tenant_id)
        usable = self._usable_token(credentials, rejected=None)
        return usable if usable is not None else self._refresh(rejected=None)

    def renew(self, rejected_token: str) -> str:
        # A refresh elsewhere kills our copy: re-read the shared token before refreshing it ourselves.
        usable = self._usable_token(self._secrets.read(self._tenant_id, fresh=True), rejected=rejected_token)
        return usable if usable is not None else self._refresh(rejected=rejected_token)

    def _usable_token(self, credentials: TenantCredentials, rejected: str | None) -> str | None:
        if credentials.access_token is None or credentials.access_token_expires_at is None:
            return None
        token = credentials.access_token.get_secret_value()
        now = datetime.fromtimestamp(self._clock(), UTC)
        margin = refresh_margin(credentials, self._margin)
        if token == rejected or credentials.access_token_expires_at - margin <= now:
            return None
        return token

    def _refresh(self, rejected: str | None) -> str:
        holder = uuid.uuid4().hex
        deadline = self._clock() + WAIT_FOR_OTHER_REFRESHER_SECONDS
        while not self._table.acquire_refresh_lock(self._tenant_id, holder, REFRESH_LEASE_SECONDS):
            # Another worker is refreshing: wait for its token rather than refreshing twice.
            self._sleep(0.25)
            usable = self._usable_token(self._secrets.read(self._tenant_id, fresh=True), rejected)
            if usable is not None:
                return usable
            if self._clock() > deadline:
                raise CanvasUnavailableError("another worker holds the token refresh lock too long")
        try:
            credentials = self._secrets.read(self._tenant_id, fresh=True)
            usable = self._usable_token(credentials, rejected)
            if usable is not None:
                return usable
            # A worker that held the lock before us may have had the grant refused: one refusal settles it.
            tenant = self._table.get_tenant(self._tenant_id)
            if tenant is not None and tenant.status is TenantStatus.NEEDS_REAUTHORIZATION:
                raise AuthorizationError(f"the tenant must authorize again ({tenant.status_reason})")
            return self._refresh_holding_lock(credentials)
        finally:
            self._table.release_refresh_lock(self._tenant_id, holder)

    def _refresh_holding_lock(self, credentials: TenantCredentials) -> str:
        if credentials.refresh_token is None:
            self._table.mark_needs_reauthorization(self._tenant_id, "no refresh token stored")
            raise AuthorizationError("the tenant has no refresh token; authorize again")
        try:
            grant = self._oauth.refresh(credentials.refresh_token.get_secret_value())
        except OAuthError as error:
            if not error.grant_is_dead:
                raise
            self._table.mark_needs_reauthorization(self._tenant_id, f"token refresh refused: {error.error}")
            raise AuthorizationError(
                f"Canvas refused the token refresh ({error.error}); authorize again"
            ) from error
        issued_at = datetime.fromtimestamp(self._clock(), UTC)
        # Canvas sends no new refresh token on refresh: the stored one stays valid, so it is kept.
        updated = credentials.model_copy(
            update={
                "access_token": grant.access_token,
                "access_token_issued_at": issued_at,
                "access_token_expires_at": issued_at + timedelta(seconds=grant.expires_in or 3600),
            }
        )
        self._secrets.write(self._tenant_id, updated)
        return grant.access_token.get_secret_value()


class FixedTokenSource:
    """A token that was just issued, used once before it is stored (account discovery at connect)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def access_token(self) -> str:
        return self._token

    def renew(self, rejected_token: str) -> str:
        raise AuthorizationError("Canvas rejected a token it has just issued")
