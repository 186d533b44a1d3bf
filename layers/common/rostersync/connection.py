"""A tenant's authenticated Canvas client, built from its stored settings and secret."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from pydantic import SecretStr

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import CanvasNotConfiguredError, CanvasNotFoundError, CanvasUnavailableError
from rostersync.canvas.models import CanvasCourse
from rostersync.canvas.oauth import OAuthClient
from rostersync.canvas.scopes import GET_ACCOUNT_COURSE
from rostersync.canvas.tokens import SharedToken, TenantTokenSource
from rostersync.models import Tenant, TenantStatus
from rostersync.services import Services
from rostersync.store.secrets import reveal


def insecure_canvas_allowed(services: Services, tenant: Tenant) -> bool:
    # Both must agree: a tenant flag alone never opens http or loopback on a stack that forbids it.
    return tenant.allow_insecure_canvas and services.settings.allow_insecure_canvas_urls


def canvas_key_of(tenant: Tenant) -> tuple[str, str]:
    """The tenant's Canvas URL and developer key id; a tenant whose admin has not saved them has none."""
    if tenant.canvas_url is None or tenant.client_id is None:
        raise CanvasNotConfiguredError("the tenant's Canvas URL and Client ID are not saved yet")
    return tenant.canvas_url, tenant.client_id


def oauth_client_for(services: Services, tenant: Tenant) -> OAuthClient:
    canvas_url, client_id = canvas_key_of(tenant)
    credentials = services.secrets.read(tenant.tenant_id)
    if (credentials.canvas_origin, credentials.client_id) != (canvas_url, client_id):
        # Checked where the secret leaves: whatever changed the tenant's URL, the secret goes nowhere else.
        raise CanvasNotConfiguredError(
            "the saved Client Secret belongs to another Canvas URL or Client ID; enter it again"
        )
    return OAuthClient(
        canvas_url,
        client_id=client_id,
        client_secret=credentials.client_secret.get_secret_value(),
        allow_insecure=insecure_canvas_allowed(services, tenant),
        timeout_seconds=services.settings.canvas_timeout_seconds,
    )


class StoredTokens:
    """A tenant's shared tokens in its secret, its refresh lock and refusal on its DynamoDB row."""

    def __init__(self, services: Services, tenant_id: str) -> None:
        self._services = services
        self._tenant_id = tenant_id

    def read(self, *, fresh: bool) -> SharedToken:
        credentials = self._services.secrets.read(self._tenant_id, fresh=fresh)
        return SharedToken(
            access_token=reveal(credentials.access_token),
            refresh_token=reveal(credentials.refresh_token),
            expires_at=credentials.access_token_expires_at,
            issued_at=credentials.access_token_issued_at,
        )

    def save_access_token(self, access_token: str, issued_at: datetime, expires_at: datetime) -> None:
        credentials = self._services.secrets.read(self._tenant_id, fresh=True)
        self._services.secrets.write(
            self._tenant_id,
            credentials.model_copy(
                update={
                    "access_token": SecretStr(access_token),
                    "access_token_issued_at": issued_at,
                    "access_token_expires_at": expires_at,
                }
            ),
        )

    def acquire_refresh_lock(self, holder: str, lease_seconds: int) -> bool:
        return self._services.table.acquire_refresh_lock(self._tenant_id, holder, lease_seconds)

    def release_refresh_lock(self, holder: str) -> None:
        self._services.table.release_refresh_lock(self._tenant_id, holder)

    def refusal(self) -> str | None:
        tenant = self._services.table.get_tenant(self._tenant_id)
        if tenant is None or tenant.status is not TenantStatus.NEEDS_REAUTHORIZATION:
            return None
        return tenant.status_reason or "the grant was refused"

    def record_refusal(self, reason: str) -> None:
        self._services.table.mark_needs_reauthorization(self._tenant_id, reason)


def token_source_for(services: Services, tenant: Tenant) -> TenantTokenSource:
    return TenantTokenSource(
        StoredTokens(services, tenant.tenant_id),
        oauth=oauth_client_for(services, tenant),
        refresh_margin_seconds=services.settings.token_refresh_margin_seconds,
    )


def canvas_client_for(services: Services, tenant: Tenant) -> CanvasClient:
    return CanvasClient(
        canvas_key_of(tenant)[0],
        token_source_for(services, tenant),
        allow_insecure=insecure_canvas_allowed(services, tenant),
        timeout_seconds=services.settings.canvas_timeout_seconds,
    )


def read_account_course(client: CanvasClient, tenant: Tenant, course_id: int) -> CanvasCourse | None:
    """One course of the tenant's root account, with its term; None when Canvas does not have it there."""
    try:
        item = client.get_one(
            GET_ACCOUNT_COURSE,
            [("include[]", "term")],
            account_id=tenant.root_account_id or "self",
            id=course_id,
        )
    except CanvasNotFoundError:
        return None
    return CanvasCourse.model_validate(item)


@contextmanager
def canvas_slot(
    services: Services,
    tenant_id: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[int]:
    """Hold one of the tenant's Canvas concurrency slots while talking to its Canvas."""
    settings = services.settings
    holder = uuid.uuid4().hex
    slots = list(range(settings.canvas_concurrency_per_tenant))
    deadline = clock() + settings.canvas_slot_wait_seconds
    while True:
        random.shuffle(slots)  # spread the conditional writes over the slots
        taken = next(
            (
                slot
                for slot in slots
                if services.table.acquire_canvas_slot(
                    tenant_id, slot, holder, settings.canvas_slot_lease_seconds
                )
            ),
            None,
        )
        if taken is not None:
            break
        if clock() > deadline:
            raise CanvasUnavailableError(
                f"all {len(slots)} Canvas slots of tenant {tenant_id} stayed busy for "
                f"{settings.canvas_slot_wait_seconds:.0f} s"
            )
        sleep(0.2 + random.random() * 0.3)  # noqa: S311 - jitter, not cryptography
    try:
        yield taken
    finally:
        services.table.release_canvas_slot(tenant_id, taken, holder)
