"""Who the signed-in admin is and which tenants they may act for: the token's subject (verified by API
Gateway's JWT authorizer) looked up in rostersync's own membership records on every request."""

from __future__ import annotations

import contextlib
import functools
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from rostersync.services import Services
from rostersync.store.user_pool import UserPool

DISCOVERY_TIMEOUT_SECONDS = 3
logger = Logger()


class SignInError(Exception):
    """The request's admin may not do this; `status` is the HTTP answer (401: sign in again, 403: no)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class AdminTenant(BaseModel):
    tenant_id: str
    name: str


class AdminSession(BaseModel):
    subject: str
    email: str
    operator: bool
    tenants: list[AdminTenant]
    tenant_id: str | None  # the tenant this request acts for (None: the admin has to choose one)


def admin_session(services: Services, claims: dict[str, object], wanted_tenant: str | None) -> AdminSession:
    subject = str(claims.get("sub") or "")
    if not subject:
        raise SignInError("the token names no subject", 401)
    records = services.table.subject_records(subject)
    issued_at = int(str(claims.get("iat") or 0))
    if records.signed_out_at is not None and issued_at <= records.signed_out_at:
        raise SignInError("you signed out; sign in again", 401)
    tenants = []
    for membership in records.memberships:
        tenant = services.table.get_tenant(membership.tenant_id)
        if tenant is not None:  # a deleted tenant's membership is left to nobody
            tenants.append(AdminTenant(tenant_id=tenant.tenant_id, name=tenant.name))
    tenants.sort(key=lambda tenant: (tenant.name.casefold(), tenant.tenant_id))  # as the picker lists them
    ids = [tenant.tenant_id for tenant in tenants]
    if wanted_tenant:
        if wanted_tenant not in ids:
            raise SignInError("you are not an admin of this tenant", 403)
        tenant_id: str | None = wanted_tenant
    else:
        tenant_id = ids[0] if len(ids) == 1 else None
    email = str(claims.get("email") or next((m.email for m in records.memberships), subject))
    return AdminSession(
        subject=subject, email=email, operator=records.operator, tenants=tenants, tenant_id=tenant_id
    )


def sign_out(services: Services, subject: str) -> None:
    """Every token issued to the subject until now stops working here (the IdP's session ends separately)."""
    services.table.sign_out(subject, datetime.now(UTC))


class SignInConfiguration(BaseModel):
    """What the settings page signs in with (GET /console/sign-in)."""

    issuer: str
    client_id: str
    development_tokens: bool


_console_clients: dict[str, str] = {}  # pool id -> the page's client id, once found (per container)


def _console_client_id(pool_id: str) -> str:
    """The page's client in the pool; empty when it cannot be found (e.g. under `sam local`, whose
    environment names no real pool): the page then says that sign-in is not configured."""
    if pool_id not in _console_clients:
        try:
            found = UserPool(pool_id).console_client_id()
        except (BotoCoreError, ClientError):
            logger.warning("cannot read the admins' user pool", extra={"pool": pool_id})
            return ""
        if found is None:
            return ""
        _console_clients[pool_id] = found
    return _console_clients[pool_id]


def sign_in_configuration(services: Services) -> SignInConfiguration:
    settings = services.settings
    client_id = settings.admin_sign_in_client_id
    if not client_id and settings.admin_user_pool_id:
        client_id = _console_client_id(settings.admin_user_pool_id)
    return SignInConfiguration(
        issuer=settings.admin_sign_in_issuer,
        client_id=client_id,
        development_tokens=settings.development_tokens,
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


@functools.cache
def _discovered_origins(issuer: str) -> tuple[str, ...]:
    import requests  # only the console page asks: the delivery API checks sessions through web.py, no HTTP

    answer = requests.get(
        f"{issuer.rstrip('/')}/.well-known/openid-configuration", timeout=DISCOVERY_TIMEOUT_SECONDS
    )
    answer.raise_for_status()
    document = answer.json()
    endpoints = ("token_endpoint", "revocation_endpoint", "userinfo_endpoint")
    return tuple(sorted({_origin(str(document[name])) for name in endpoints if document.get(name)} - {""}))


def identity_provider_origins(issuer: str) -> list[str]:
    """The origins the page calls during sign-in (discovery, token, revocation): the CSP's connect-src.
    Cognito's token endpoint is on its hosted UI's domain, not the issuer's: read from discovery, once per
    container (when the IdP cannot be reached, the issuer's alone; the page then says what failed)."""
    import requests

    origins = {_origin(issuer)} - {""}
    with contextlib.suppress(requests.RequestException, ValueError):
        origins.update(_discovered_origins(issuer))
    return sorted(origins)
