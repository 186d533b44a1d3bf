"""Tenants: creation, and connecting them to Canvas through the OAuth web flow."""

from __future__ import annotations

import csv
import io
import re
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urlencode

from pydantic import ValidationError

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import CanvasError
from rostersync.canvas.models import CanvasAccount
from rostersync.canvas.oauth import authorize_url
from rostersync.canvas.scopes import GET_ACCOUNT, LIST_ADMIN_ACCOUNTS
from rostersync.canvas.tokens import FixedTokenSource
from rostersync.canvas.urls import normalize_canvas_url
from rostersync.connection import insecure_canvas_allowed, oauth_client_for
from rostersync.models import Tenant, TenantSettings, TenantStatus
from rostersync.services import Services
from rostersync.store.secrets import TenantCredentials


class TenantError(Exception):
    """A request about a tenant that cannot be honoured; the message is safe to show."""


class UnknownTenantError(TenantError):
    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"unknown tenant {tenant_id!r}")


class AuthorizationFlowError(TenantError):
    """The OAuth flow failed; nothing stored was changed."""


def new_tenant_id() -> str:
    return "t" + secrets.token_hex(6)


def require_tenant(services: Services, tenant_id: str) -> Tenant:
    tenant = services.table.get_tenant(tenant_id)
    if tenant is None:
        raise UnknownTenantError(tenant_id)
    return tenant


def create_tenant(
    services: Services,
    *,
    name: str,
    canvas_url: str,
    client_id: str,
    client_secret: str,
    allow_insecure_canvas: bool = False,
    settings: TenantSettings | None = None,
) -> Tenant:
    if not name.strip():
        raise TenantError("a tenant needs a name")
    if not client_id.strip().isdigit():
        raise TenantError("the Client ID is the developer key's number, e.g. 10000000000042")
    if not client_secret.strip():
        raise TenantError("the Client Secret is empty")
    if allow_insecure_canvas and not services.settings.allow_insecure_canvas_urls:
        raise TenantError("this stack does not allow insecure (http or loopback) Canvas URLs")
    try:
        origin = normalize_canvas_url(canvas_url, allow_insecure=allow_insecure_canvas)
    except CanvasError as error:
        raise TenantError(str(error)) from error
    tenant = Tenant(
        tenant_id=new_tenant_id(),
        name=name.strip(),
        canvas_url=origin,
        client_id=client_id.strip(),
        allow_insecure_canvas=allow_insecure_canvas,
        settings=settings or TenantSettings(),
    )
    services.secrets.create(
        tenant.tenant_id, TenantCredentials.model_validate({"client_secret": client_secret.strip()})
    )
    services.table.create_tenant(tenant)
    return tenant


def configure_tenant(services: Services, tenant_id: str, changes: dict[str, object]) -> Tenant:
    """Replace the named top-level settings (validated together); return the tenant with its new settings."""
    tenant = require_tenant(services, tenant_id)
    try:
        settings = TenantSettings.model_validate({**tenant.settings.model_dump(), **changes})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        raise TenantError(f"invalid settings: {problems}") from None
    services.table.update_tenant_settings(tenant_id, settings)
    return tenant.model_copy(update={"settings": settings})


class SyncListMode(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"


COURSE_REFERENCE = re.compile(r"^(\d+|sis_course_id:\S.*)$")


def parse_course_list_csv(text: str) -> list[str]:
    """Course references from a CSV's first column: Canvas ids or sis_course_id:<id>; a header is skipped."""
    references: list[str] = []
    problems: list[str] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        value = row[0].strip() if row else ""
        if not value or (number == 1 and value.lower() in {"course_id", "canvas_course_id", "course"}):
            continue
        if COURSE_REFERENCE.match(value):
            references.append(value)
        else:
            problems.append(f"line {number}: {value!r}")
    if problems:
        raise TenantError("not a Canvas course id or sis_course_id:<id>: " + "; ".join(problems[:10]))
    return references


def update_sync_list(
    services: Services, tenant_id: str, mode: SyncListMode, references: list[str], *, confirmed: bool = False
) -> Tenant:
    """Add to, remove from or replace the tenant's course sync list (replace only when confirmed)."""
    tenant = require_tenant(services, tenant_id)
    current = list(tenant.settings.courses.sync_list)
    if mode is SyncListMode.REPLACE and not confirmed:
        raise TenantError(
            f"replace would swap the {len(current)} listed courses for {len(references)}; confirm to proceed"
        )
    if mode is SyncListMode.ADD:
        updated = current + [ref for ref in dict.fromkeys(references) if ref not in current]
    elif mode is SyncListMode.REMOVE:
        updated = [ref for ref in current if ref not in set(references)]
    else:
        updated = list(dict.fromkeys(references))
    courses = tenant.settings.courses.model_copy(update={"sync_list": tuple(updated)})
    return configure_tenant(services, tenant_id, {"courses": courses.model_dump()})


def _split_state(combined: str | None) -> tuple[str, str]:
    tenant_id, _, state = (combined or "").partition(".")
    if not tenant_id or not state:
        raise AuthorizationFlowError(
            "the authorization link is missing its state; start again from rostersync"
        )
    return tenant_id, state


def begin_authorization(services: Services, tenant_id: str, api_url: str) -> str:
    """A one-time start URL for the admin (or a script) to open."""
    require_tenant(services, tenant_id)
    state = secrets.token_urlsafe(32)
    services.table.put_oauth_state(tenant_id, state, services.settings.oauth_state_ttl_seconds)
    return f"{api_url.rstrip('/')}/oauth/start?" + urlencode({"state": f"{tenant_id}.{state}"})


def canvas_authorize_redirect(services: Services, combined_state: str | None, redirect_uri: str) -> str:
    """Where the start URL sends the browser: Canvas's authorize page for this tenant's key."""
    tenant_id, state = _split_state(combined_state)
    if services.table.get_oauth_state(tenant_id, state) is None:
        raise AuthorizationFlowError(
            "this authorization link is unknown or expired; start again from rostersync"
        )
    tenant = require_tenant(services, tenant_id)
    services.table.record_oauth_redirect_uri(tenant_id, state, redirect_uri)
    return authorize_url(
        tenant.canvas_url, client_id=tenant.client_id, redirect_uri=redirect_uri, state=f"{tenant_id}.{state}"
    )


def complete_authorization(
    services: Services, combined_state: str | None, code: str | None, error: str | None
) -> Tenant:
    """Canvas redirected back: exchange the code, find the root account, store tokens, activate."""
    tenant_id, state = _split_state(combined_state)
    pending = services.table.take_oauth_state(tenant_id, state)
    if pending is None or pending.redirect_uri is None:
        raise AuthorizationFlowError("this authorization is unknown, expired or already used; start again")
    if error:
        reason = "the Canvas user declined access" if error == "access_denied" else f"Canvas answered {error}"
        raise AuthorizationFlowError(f"authorization not completed: {reason}")
    if not code:
        raise AuthorizationFlowError("Canvas sent no authorization code")
    tenant = require_tenant(services, tenant_id)
    try:
        grant = oauth_client_for(services, tenant).exchange_code(code, pending.redirect_uri)
        if grant.refresh_token is None:
            raise AuthorizationFlowError("Canvas issued no refresh token")
        client = CanvasClient(
            tenant.canvas_url,
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
            "access_token_expires_at": datetime.fromtimestamp(
                now.timestamp() + (grant.expires_in or 3600), UTC
            ),
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
