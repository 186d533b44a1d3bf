"""Inviting and removing a tenant's admins, and granting or revoking operators (the CLI's `admin`)."""

from __future__ import annotations

from datetime import UTC, datetime

from rostersync.services import Services
from rostersync.store.admins import Membership
from rostersync.store.user_pool import UserPool
from rostersync.tenants import TenantError, require_tenant


class MembershipError(TenantError):
    pass


def _subject(pool: UserPool | None, email: str, password: str | None, subject: str | None) -> str:
    if pool is not None:
        return pool.invite(email, password)
    if not subject:
        raise MembershipError(
            "this stack signs admins in through the institution's identity provider: give --subject, "
            "the person's subject (`sub`) there"
        )
    return subject


def invite_admin(
    services: Services,
    pool: UserPool | None,
    tenant_id: str,
    email: str,
    *,
    password: str | None = None,
    subject: str | None = None,
    added_by: str,
) -> Membership:
    """Make `email` an admin of the tenant: their account in the stack's user pool (created, and mailed a
    temporary password by Cognito, unless a password is given), and their membership."""
    require_tenant(services, tenant_id)
    membership = Membership(
        tenant_id=tenant_id,
        subject=_subject(pool, email, password, subject),
        email=email,
        added_at=datetime.now(UTC),
        added_by=added_by,
    )
    services.table.put_membership(membership)
    return membership


def remove_admin(services: Services, tenant_id: str, email: str) -> Membership:
    """End the membership: their next request for the tenant is refused (their account stays)."""
    found = [
        member for member in services.table.admins_of(tenant_id) if member.email.lower() == email.lower()
    ]
    if not found:
        raise MembershipError(f"{email} is not an admin of {tenant_id}")
    for member in found:
        services.table.delete_membership(tenant_id, member.subject)
    return found[0]


def grant_operator(
    services: Services,
    pool: UserPool | None,
    email: str,
    *,
    password: str | None = None,
    subject: str | None = None,
    added_by: str,
) -> str:
    """Operators create tenants. The record is what the API checks; the pool's group mirrors it."""
    operator = _subject(pool, email, password, subject)
    if pool is not None:
        pool.set_operator(email, True)
    services.table.put_operator(operator, email, added_by)
    return operator


def revoke_operator(services: Services, pool: UserPool | None, email: str) -> None:
    found = [item for item in services.table.operators() if str(item["email"]).lower() == email.lower()]
    if not found:
        raise MembershipError(f"{email} is not an operator")
    for item in found:
        services.table.delete_operator(str(item["subject"]))
    if pool is not None:
        pool.set_operator(email, False)
