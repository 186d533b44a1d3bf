"""A tenant's authenticated Canvas client, built from its stored settings and secret."""

from __future__ import annotations

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.oauth import OAuthClient
from rostersync.canvas.tokens import TenantTokenSource
from rostersync.models import Tenant
from rostersync.services import Services


def insecure_canvas_allowed(services: Services, tenant: Tenant) -> bool:
    # Both must agree: a tenant flag alone never opens http or loopback on a stack that forbids it.
    return tenant.allow_insecure_canvas and services.settings.allow_insecure_canvas_urls


def oauth_client_for(services: Services, tenant: Tenant) -> OAuthClient:
    credentials = services.secrets.read(tenant.tenant_id)
    return OAuthClient(
        tenant.canvas_url,
        client_id=tenant.client_id,
        client_secret=credentials.client_secret.get_secret_value(),
        allow_insecure=insecure_canvas_allowed(services, tenant),
        timeout_seconds=services.settings.canvas_timeout_seconds,
    )


def canvas_client_for(services: Services, tenant: Tenant) -> CanvasClient:
    tokens = TenantTokenSource(
        tenant.tenant_id,
        secrets=services.secrets,
        table=services.table,
        oauth=oauth_client_for(services, tenant),
        refresh_margin_seconds=services.settings.token_refresh_margin_seconds,
    )
    return CanvasClient(
        tenant.canvas_url,
        tokens,
        allow_insecure=insecure_canvas_allowed(services, tenant),
        timeout_seconds=services.settings.canvas_timeout_seconds,
    )
