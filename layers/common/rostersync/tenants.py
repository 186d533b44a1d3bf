"""Tenants: creating, finding, removing them, and saving or disconnecting their Canvas connection.

Connecting a tenant to Canvas (the OAuth web flow) is in authorization.py; its sync settings and course
selection are in tenant_settings.py."""

from __future__ import annotations

import secrets

from rostersync.canvas.errors import CanvasError
from rostersync.canvas.urls import normalize_canvas_url
from rostersync.connection import canvas_key_of, oauth_client_for
from rostersync.models import Tenant, TenantSettings, TenantStatus, parse_canvas_id
from rostersync.services import Services
from rostersync.store.secrets import TenantCredentials


class TenantError(Exception):
    """A request about a tenant that cannot be honoured; the message is safe to show."""


class UnknownTenantError(TenantError):
    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"unknown tenant {tenant_id!r}")


class CanvasSettingsError(TenantError):
    """One Canvas setting is not acceptable; `field` names it so a form can show the message beside it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def new_tenant_id() -> str:
    return "t" + secrets.token_hex(6)


def require_tenant(services: Services, tenant_id: str) -> Tenant:
    tenant = services.table.get_tenant(tenant_id)
    if tenant is None:
        raise UnknownTenantError(tenant_id)
    return tenant


def _checked_canvas_settings(
    services: Services, canvas_url: str, client_id: str, *, allow_insecure_canvas: bool
) -> tuple[str, str]:
    if parse_canvas_id(client_id.strip()) is None:
        raise CanvasSettingsError(
            "client_id", "the Client ID is the developer key's number, e.g. 10000000000042"
        )
    allow_insecure = allow_insecure_canvas and services.settings.allow_insecure_canvas_urls
    try:
        origin = normalize_canvas_url(canvas_url, allow_insecure=allow_insecure)
    except CanvasError as error:
        raise CanvasSettingsError("canvas_url", str(error)) from error
    return origin, client_id.strip()


def create_tenant(
    services: Services,
    *,
    name: str,
    canvas_url: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    allow_insecure_canvas: bool = False,
    settings: TenantSettings | None = None,
) -> Tenant:
    """A new tenant: with its Canvas settings, or with a name only for its admin to fill in."""
    if not name.strip():
        raise TenantError("a tenant needs a name")
    if allow_insecure_canvas and not services.settings.allow_insecure_canvas_urls:
        raise TenantError("this stack does not allow insecure (http or loopback) Canvas URLs")
    tenant = Tenant(
        tenant_id=new_tenant_id(),
        name=name.strip(),
        status=TenantStatus.NOT_CONFIGURED,
        allow_insecure_canvas=allow_insecure_canvas,
        settings=settings or TenantSettings(),
    )
    given = [value for value in (canvas_url, client_id, client_secret) if value]
    if given and len(given) < 3:
        raise TenantError("give the Canvas URL, Client ID and Client Secret together, or none of them")
    if canvas_url and client_id and client_secret:
        origin, key_id = _checked_canvas_settings(
            services, canvas_url, client_id, allow_insecure_canvas=allow_insecure_canvas
        )
        if not client_secret.strip():
            raise CanvasSettingsError("client_secret", "the Client Secret is empty")
        tenant = tenant.model_copy(
            update={"canvas_url": origin, "client_id": key_id, "status": TenantStatus.PENDING_AUTHORIZATION}
        )
        credentials = {"client_secret": client_secret.strip(), "canvas_origin": origin, "client_id": key_id}
        services.secrets.create(tenant.tenant_id, TenantCredentials.model_validate(credentials))
    services.table.create_tenant(tenant)
    return tenant


def save_canvas_settings(
    services: Services, tenant_id: str, *, canvas_url: str, client_id: str, client_secret: str | None
) -> Tenant:
    """Edit/Save: a blank secret keeps the stored one for the same Canvas and key; a new URL or key
    needs the secret again (a saved secret is never sent to another host) and a new authorization."""
    tenant = require_tenant(services, tenant_id)
    origin, key_id = _checked_canvas_settings(
        services, canvas_url, client_id, allow_insecure_canvas=tenant.allow_insecure_canvas
    )
    new_secret = (client_secret or "").strip()
    same_key = (origin, key_id) == (tenant.canvas_url, tenant.client_id)
    if not new_secret and tenant.canvas_url is None:
        raise CanvasSettingsError("client_secret", "enter the developer key's Client Secret")
    if not new_secret and not same_key:
        raise CanvasSettingsError(
            "client_secret",
            "a new Canvas URL or Client ID needs its Client Secret: the saved one is only sent to "
            f"{tenant.canvas_url}",
        )
    if new_secret:
        services.secrets.save_client_secret(
            tenant_id, new_secret, canvas_origin=origin, client_id=key_id, keep_tokens=same_key
        )
    if same_key:
        return tenant
    saved = tenant.model_copy(
        update={
            "canvas_url": origin,
            "client_id": key_id,
            "status": TenantStatus.PENDING_AUTHORIZATION,
            "status_reason": "Canvas settings saved; generate a key to authorize",
            "root_account_id": None,
            "root_account_uuid": None,
            "authorized_at": None,
            "authorized_by": None,
        }
    )
    services.table.update_tenant_status(saved)
    return saved


def disconnect_tenant(services: Services, tenant_id: str, by: str) -> Tenant:
    """End the tenant's grant in Canvas and forget its tokens; the Canvas settings and secret stay, so
    Generate Key connects it again."""
    tenant = require_tenant(services, tenant_id)
    canvas_key_of_or_refuse(tenant)
    credentials = services.secrets.read(tenant_id, fresh=True)
    outcome = "the grant was revoked in Canvas"
    if credentials.access_token is not None:
        try:
            oauth_client_for(services, tenant).revoke(credentials.access_token.get_secret_value())
        except CanvasError as error:
            outcome = (
                f"Canvas did not confirm the revocation ({error.code}): remove the token in Canvas "
                "(the authorizing user's Settings > Approved Integrations)"
            )
    forgotten = {
        "access_token": None,
        "refresh_token": None,
        "access_token_expires_at": None,
        "access_token_issued_at": None,
    }
    services.secrets.write(tenant_id, credentials.model_copy(update=forgotten))
    disconnected = tenant.model_copy(
        update={
            "status": TenantStatus.PENDING_AUTHORIZATION,
            "status_reason": f"disconnected by {by}; {outcome}",
            "authorized_at": None,
            "authorized_by": None,
        }
    )
    services.table.update_tenant_status(disconnected)
    return disconnected


def remove_tenant(services: Services, tenant_id: str) -> int:
    """Delete the tenant, all its stored data and its secret; return how many items were deleted."""
    tenant = require_tenant(services, tenant_id)
    if tenant.canvas_url is not None:
        services.secrets.delete(tenant_id)
    return services.table.delete_tenant(tenant_id)


def canvas_key_of_or_refuse(tenant: Tenant) -> tuple[str, str]:
    try:
        return canvas_key_of(tenant)
    except CanvasError as error:
        raise TenantError(f"{error}: save them on the settings page first") from error
