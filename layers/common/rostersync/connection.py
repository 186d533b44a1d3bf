"""A tenant's authenticated Canvas client, built from its stored settings and secret."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import SecretStr

from rostersync.canvas.concurrency import AimdLimit
from rostersync.canvas.errors import CanvasNotConfiguredError, CanvasNotFoundError, CanvasUnavailableError
from rostersync.canvas.models import CanvasCourse
from rostersync.canvas.scopes import GET_ACCOUNT_COURSE
from rostersync.canvas.tokens import SharedToken, TenantTokenSource
from rostersync.models import Tenant, TenantStatus
from rostersync.services import Services
from rostersync.store.secrets import reveal

if TYPE_CHECKING:
    from rostersync.canvas.client import CanvasClient
    from rostersync.canvas.oauth import OAuthClient


def insecure_canvas_allowed(services: Services, tenant: Tenant) -> bool:
    # Both must agree: a tenant flag alone never opens http or loopback on a stack that forbids it.
    return tenant.allow_insecure_canvas and services.settings.allow_insecure_canvas_urls


def canvas_key_of(tenant: Tenant) -> tuple[str, str]:
    """The tenant's Canvas URL and developer key id; a tenant whose admin has not saved them has none."""
    if tenant.canvas_url is None or tenant.client_id is None:
        raise CanvasNotConfiguredError("the tenant's Canvas URL and Client ID are not saved yet")
    return tenant.canvas_url, tenant.client_id


# The HTTP clients (requests) are imported where a client is made: the functions that read the table only
# (the delivery API, the feed publisher) reach this module and never call Canvas. Those that do import
# rostersync.canvas.client at their own cold start (sync/, grades/, authorization, tenant_settings).
def oauth_client_for(services: Services, tenant: Tenant) -> OAuthClient:
    from rostersync.canvas.oauth import OAuthClient

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
    from rostersync.canvas.client import CanvasClient

    return CanvasClient(
        canvas_key_of(tenant)[0],
        token_source_for(services, tenant),
        allow_insecure=insecure_canvas_allowed(services, tenant),
        timeout_seconds=services.settings.canvas_timeout_seconds,
        rate_limit=shared_canvas_limit(services, tenant.tenant_id),
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


class SharedCanvasLimit:
    """A tenant's in-flight Canvas limit as this process sees it: an :class:`AimdLimit` fed by every
    answer of the tenant's Canvas, kept in step with the limit stored for all the tenant's workers (read
    again every few seconds, written when its whole number changes). Thread-safe."""

    REREAD_SECONDS = 5.0

    def __init__(
        self, services: Services, tenant_id: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._table = services.table
        self._tenant_id = tenant_id
        self._clock = clock
        self._lock = threading.Lock()
        self._aimd = AimdLimit(start=services.settings.canvas_concurrency_per_tenant)
        self._read_at: float | None = None
        # Held by the one thread of the process looking for a free slot of the tenant: the process's other
        # threads queue here, where waiting costs no DynamoDB writes.
        self.slot_search = threading.Lock()
        self._held_here: set[int] = set()
        self._slot_given_back = threading.Event()

    def current(self) -> int:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self.REREAD_SECONDS:
                self._read_at = now
                stored = self._table.canvas_limit(self._tenant_id)
                if stored is not None:
                    self._aimd.adopt(stored)
            return self._aimd.limit

    def slots_to_try(self, count: int) -> list[int]:
        """Of the tenant's first `count` slots, those no thread of this process holds, in random order
        (to spread the conditional writes over the slots). Starts a wait for the next one given back."""
        with self._lock:
            self._slot_given_back.clear()
            slots = [slot for slot in range(count) if slot not in self._held_here]
        random.shuffle(slots)
        return slots

    def took(self, slot: int) -> None:
        with self._lock:
            self._held_here.add(slot)

    def gave_back(self, slot: int) -> None:
        with self._lock:
            self._held_here.discard(slot)
            self._slot_given_back.set()

    def wait_for_a_slot(self, seconds: float) -> None:
        """Wait `seconds`, or less when a thread of this process gives a slot back meanwhile."""
        self._slot_given_back.wait(seconds)

    def observe(self, remaining: float) -> None:
        self._change(lambda: self._aimd.observe(remaining))

    def throttled(self) -> None:
        self._change(self._aimd.throttled)

    def _change(self, update: Callable[[], None]) -> None:
        with self._lock:
            before = self._aimd.limit
            update()
            if self._aimd.limit != before:
                self._table.save_canvas_limit(self._tenant_id, self._aimd.limit)


_shared_limits: dict[tuple[str, str], SharedCanvasLimit] = {}
_shared_limits_lock = threading.Lock()


def shared_canvas_limit(services: Services, tenant_id: str) -> SharedCanvasLimit:
    """The process's one :class:`SharedCanvasLimit` of the tenant (it lives as long as the warm
    process, so what it learned carries over from one invocation to the next)."""
    key = (services.settings.table_name, tenant_id)
    with _shared_limits_lock:
        limit = _shared_limits.get(key)
        if limit is None:
            limit = _shared_limits[key] = SharedCanvasLimit(services, tenant_id)
        return limit


@contextmanager
def canvas_slot(
    services: Services,
    tenant_id: str,
    *,
    requests: int = 1,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[int]:
    """Hold one of the tenant's Canvas concurrency slots while talking to its Canvas, a slot standing for
    `requests` requests in flight: there are as many slots as the tenant's in-flight limit holds such
    groups (at least one). A slot above a limit that shrank meanwhile is kept until it is released."""
    settings = services.settings
    holder = uuid.uuid4().hex
    limit = shared_canvas_limit(services, tenant_id)
    deadline = clock() + settings.canvas_slot_wait_seconds
    waited = f"stayed busy for {settings.canvas_slot_wait_seconds:.0f} s"
    if not limit.slot_search.acquire(timeout=settings.canvas_slot_wait_seconds):
        raise CanvasUnavailableError(f"the Canvas slots of tenant {tenant_id} {waited}")
    try:
        while True:
            count = max(1, limit.current() // max(1, requests))
            taken = next(
                (
                    slot
                    for slot in limit.slots_to_try(count)
                    if services.table.acquire_canvas_slot(
                        tenant_id, slot, holder, settings.canvas_slot_lease_seconds
                    )
                ),
                None,
            )
            if taken is not None:
                limit.took(taken)
                break
            if clock() > deadline:
                raise CanvasUnavailableError(f"all {count} Canvas slots of tenant {tenant_id} {waited}")
            limit.wait_for_a_slot(0.2 + random.random() * 0.3)  # noqa: S311 - jitter, not cryptography
    finally:
        limit.slot_search.release()
    try:
        yield taken
    finally:
        try:
            services.table.release_canvas_slot(tenant_id, taken, holder)
        finally:
            limit.gave_back(taken)
