"""Machine clients of the delivery API (the CLI's `client`): the table's registry says which tenant a
client reads, the user pool holds its secret, and the /v1 authorizer's audience lists its id.

The registry is the source of truth: every change rewrites the authorizer's audience to the stack's fixed
audience plus every registered client id (`sync_audience` re-applies it after a deploy reset it, and
`repair_audience`, on a schedule, does so whenever the two differ)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rostersync.models import ApiClient
from rostersync.services import Services
from rostersync.settings import Settings
from rostersync.store.api_authorizer import ApiAuthorizer
from rostersync.store.user_pool import MachineCredentials, UserPool, machine_client_name
from rostersync.tenants import TenantError, require_tenant

# API Gateway's "Audiences per authorizer" (HTTP API quotas; not adjustable).
MAX_AUDIENCE = 50


class MachineClientError(TenantError):
    pass


@dataclass(frozen=True)
class DeliveryAudience:
    """The /v1 authorizer and the audience the stack always accepts (the ClientJwtAudience parameter)."""

    authorizer: ApiAuthorizer
    fixed: str

    def apply(self, client_ids: Iterable[str]) -> list[str]:
        audience = [self.fixed, *sorted(set(client_ids) - {self.fixed})]
        self.authorizer.set_audience(audience)
        return audience


@dataclass(frozen=True)
class AudienceRepair:
    """What a repair changed in the authorizer's audience (both empty: it matched, nothing was written)."""

    added: list[str]
    removed: list[str]


def configured_delivery_audience(settings: Settings) -> DeliveryAudience:
    """The audience a deployed function keeps (DELIVERY_API_ID and CLIENT_JWT_AUDIENCE, from the template)."""
    missing = [
        variable
        for variable, value in (
            ("DELIVERY_API_ID", settings.delivery_api_id),
            ("CLIENT_JWT_AUDIENCE", settings.client_jwt_audience),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"the function's environment: {', '.join(missing)} not set")
    return DeliveryAudience(ApiAuthorizer(settings.delivery_api_id), settings.client_jwt_audience)


def registered_clients(services: Services) -> list[ApiClient]:
    """Every tenant's registered clients (a query per tenant: an operator's command, not a request's)."""
    table = services.table
    return [client for tenant in table.list_tenants() for client in table.list_api_clients(tenant.tenant_id)]


def _refuse_beyond_quota(registered: list[ApiClient]) -> None:
    if len(registered) + 2 > MAX_AUDIENCE:  # the new client and the fixed audience
        raise MachineClientError(
            f"the stack has {len(registered)} machine clients, the most the delivery API's authorizer can "
            f"list (API Gateway allows {MAX_AUDIENCE} audiences per JWT authorizer, one of them the stack's "
            "own): remove an unused one first (rostersync client list / client remove)"
        )


def add_machine_client(
    services: Services, pool: UserPool, audience: DeliveryAudience, tenant_id: str, name: str
) -> MachineCredentials:
    """A new app client with a secret for the tenant: registered, then let through the authorizer."""
    require_tenant(services, tenant_id)
    registered = registered_clients(services)
    _refuse_beyond_quota(registered)
    credentials = pool.create_machine_client(machine_client_name(tenant_id, name))
    try:
        services.table.put_api_client(
            ApiClient(client_id=credentials.client_id, tenant_id=tenant_id, name=name)
        )
        # The index the registry is listed from may not show the new client yet: it is added here.
        audience.apply([client.client_id for client in registered] + [credentials.client_id])
    except Exception:
        # Nobody has seen the secret: leave no client behind that nobody could use.
        services.table.delete_api_client(credentials.client_id)
        pool.delete_app_client(credentials.client_id)
        raise
    return credentials


def register_existing_client(
    services: Services, audience: DeliveryAudience, tenant_id: str, client_id: str, name: str
) -> None:
    """A client an institution's own IdP issues tokens to, registered for the tenant."""
    require_tenant(services, tenant_id)
    existing = services.table.api_client(client_id)
    if existing is not None and existing.tenant_id != tenant_id:
        raise MachineClientError(f"client {client_id} is registered to another tenant")
    registered = [client for client in registered_clients(services) if client.client_id != client_id]
    _refuse_beyond_quota(registered)
    services.table.put_api_client(ApiClient(client_id=client_id, tenant_id=tenant_id, name=name))
    audience.apply([client.client_id for client in registered] + [client_id])


def remove_machine_client(
    services: Services, pool: UserPool | None, audience: DeliveryAudience, tenant_id: str, client_id: str
) -> None:
    """Unregister first (its tokens get 401 at their next request), then delete its app client and take
    it out of the authorizer's audience."""
    client = services.table.api_client(client_id)
    if client is None or client.tenant_id != tenant_id:
        raise MachineClientError(f"tenant {tenant_id} has no client {client_id}")
    services.table.delete_api_client(client_id)
    if pool is not None:
        pool.delete_app_client(client_id)
    audience.apply(
        client.client_id for client in registered_clients(services) if client.client_id != client_id
    )


def sync_audience(services: Services, audience: DeliveryAudience) -> list[str]:
    """Rewrite the authorizer's audience from the registry (after a deploy that reset it)."""
    return audience.apply(client.client_id for client in registered_clients(services))


def repair_audience(services: Services, audience: DeliveryAudience) -> AudienceRepair:
    """Rewrite the authorizer's audience from the registry only where they differ (a deploy put the
    template's audience back): the ids missing are added, the ids nobody registered taken out.

    The registry is listed from an index that may lag a `client add` or `client remove` of a moment ago,
    so each id the list and the authorizer disagree on is decided by the client's own item, read
    consistently: a repair running beside the CLI does not undo what it just did."""
    listed = {client.client_id for client in registered_clients(services)}
    current = set(audience.authorizer.audience())
    disputed = (listed ^ current) - {audience.fixed}
    registered = (listed & current) | {
        client_id for client_id in disputed if services.table.api_client(client_id) is not None
    }
    wanted = registered | {audience.fixed}
    if wanted == current:
        return AudienceRepair(added=[], removed=[])
    audience.apply(registered)
    return AudienceRepair(added=sorted(wanted - current), removed=sorted(current - wanted))
