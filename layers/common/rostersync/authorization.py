"""Connecting a tenant to Canvas through the OAuth web flow: the start link, the redirect to Canvas's
authorize page, and the callback that stores the tokens and activates the tenant."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import CanvasError
from rostersync.canvas.models import CanvasAccount
from rostersync.canvas.oauth import authorize_url
from rostersync.canvas.scopes import GET_ACCOUNT, LIST_ADMIN_ACCOUNTS
from rostersync.canvas.tokens import FixedTokenSource
from rostersync.connection import insecure_canvas_allowed, oauth_client_for
from rostersync.models import Tenant, TenantStatus
from rostersync.services import Services
from rostersync.tenants import TenantError, canvas_key_of_or_refuse, require_tenant


class AuthorizationFlowError(TenantError):
    """The OAuth flow failed; nothing stored was changed."""


def _split_state(combined: str | None) -> tuple[str, str]:
    tenant_id, _, state = (combined or "").partition(".")
    if not tenant_id or not state:
        raise AuthorizationFlowError(
            "the authorization link is missing its state; start again from rostersync"
        )
    return tenant_id, state


def _digest(browser_binding: str) -> str:
    return hashlib.sha256(browser_binding.encode()).hexdigest()


def begin_authorization(
    services: Services, tenant_id: str, api_url: str, started_by: str, *, browser_bound: bool = True
) -> str:
    """A start URL for one authorization by `started_by` (an admin's token subject, or an operator).

    Browser-bound (the settings page's Generate Key): the callback must bring back the cookie the start
    link set, so only the browser that began can finish. An operator's link (`tenant authorize`) is
    not: any client that follows its redirects completes it, once, within the state's lifetime."""
    tenant = require_tenant(services, tenant_id)
    canvas_key_of_or_refuse(tenant)
    state = secrets.token_urlsafe(32)
    services.table.put_oauth_state(
        tenant_id, state, services.settings.oauth_state_ttl_seconds, started_by, browser_bound=browser_bound
    )
    return f"{api_url.rstrip('/')}/oauth/start?" + urlencode({"state": f"{tenant_id}.{state}"})


@dataclass(frozen=True)
class AuthorizeRedirect:
    location: str  # Canvas's authorize page
    browser_binding: str  # a cookie value for the browser; the callback must bring it back


def canvas_authorize_redirect(
    services: Services, combined_state: str | None, redirect_uri: str
) -> AuthorizeRedirect:
    """Where the start URL sends the browser. The state is bound to this browser, so the link opens once."""
    tenant_id, state = _split_state(combined_state)
    browser_binding = secrets.token_urlsafe(32)
    if not services.table.open_oauth_state(tenant_id, state, redirect_uri, _digest(browser_binding)):
        raise AuthorizationFlowError(
            "this authorization link is unknown, expired or already opened; start again from rostersync"
        )
    canvas_url, client_id = canvas_key_of_or_refuse(require_tenant(services, tenant_id))
    location = authorize_url(
        canvas_url, client_id=client_id, redirect_uri=redirect_uri, state=f"{tenant_id}.{state}"
    )
    return AuthorizeRedirect(location, browser_binding)


def complete_authorization(
    services: Services,
    combined_state: str | None,
    code: str | None,
    error: str | None,
    browser_binding: str | None,
) -> Tenant:
    """Canvas redirected back: exchange the code, find the root account, store tokens, activate."""
    tenant_id, state = _split_state(combined_state)
    unknown = AuthorizationFlowError("this authorization is unknown, expired or already used; start again")
    pending = services.table.peek_oauth_state(tenant_id, state)
    if pending is None or pending.redirect_uri is None or pending.browser_hash is None:
        raise unknown
    same_browser = browser_binding is not None and hmac.compare_digest(
        pending.browser_hash, _digest(browser_binding)
    )
    # The binding is checked before the state is spent: a request without the browser's cookie (a
    # leaked callback URL) must not cancel the admin's authorization.
    if pending.browser_bound and not same_browser:
        raise AuthorizationFlowError(
            "this authorization was started in another browser; start again from the settings page"
        )
    if not services.table.spend_oauth_state(pending):
        raise unknown
    if error:
        reason = "the Canvas user declined access" if error == "access_denied" else f"Canvas answered {error}"
        raise AuthorizationFlowError(f"authorization not completed: {reason}")
    if not code:
        raise AuthorizationFlowError("Canvas sent no authorization code")
    tenant = require_tenant(services, tenant_id)
    canvas_url, _ = canvas_key_of_or_refuse(tenant)
    try:
        grant = oauth_client_for(services, tenant).exchange_code(code, pending.redirect_uri)
        if grant.refresh_token is None:
            raise AuthorizationFlowError("Canvas issued no refresh token")
        client = CanvasClient(
            canvas_url,
            FixedTokenSource(grant.access_token.get_secret_value()),
            allow_insecure=insecure_canvas_allowed(services, tenant),
            timeout_seconds=services.settings.canvas_timeout_seconds,
        )
        root = discover_root_account(client)
    except CanvasError as failure:
        raise AuthorizationFlowError(f"could not connect to Canvas: {failure}") from failure
    now = datetime.now(UTC)
    credentials = services.secrets.read(tenant_id, fresh=True).model_copy(
        update={
            "access_token": grant.access_token,
            "refresh_token": grant.refresh_token,
            "access_token_issued_at": now,
            "access_token_expires_at": now + timedelta(seconds=grant.expires_in or 3600),
        }
    )
    services.secrets.write(tenant_id, credentials)
    connected = tenant.model_copy(
        update={
            "status": TenantStatus.ACTIVE,
            "status_reason": None,
            "root_account_id": root.id,
            "root_account_uuid": root.uuid,
            "authorized_at": now,
            "authorized_by": f"{grant.user.name} ({grant.user.id})" if grant.user else None,
        }
    )
    services.table.update_tenant_status(connected)
    return connected


def discover_root_account(client: CanvasClient) -> CanvasAccount:
    accounts = [CanvasAccount.model_validate(item) for item in client.get_all(LIST_ADMIN_ACCOUNTS)]
    if not accounts:
        raise AuthorizationFlowError(
            "the Canvas user who authorized administers no account; authorize as an admin"
        )
    root_id = next(
        (account.id for account in accounts if account.root_account_id is None), accounts[0].root_account_id
    )
    return CanvasAccount.model_validate(client.get_one(GET_ACCOUNT, id=root_id or accounts[0].id))
