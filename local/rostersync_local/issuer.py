"""The claims of the admins' access tokens in development: the samples under events/ (`admin token
--event`) and the local stack's development tokens (`admin token --tenant T`).

They have the shape of a Cognito access token (see identity_provider.py, which signs them): the client
as `client_id` (no `aud`), the person as `sub`. Which tenant the subject may act for is rostersync's
data (its membership records), never a claim.
"""

from __future__ import annotations

from typing import Any

OPERATOR_SUBJECT = "operator@rostersync"


def development_subject(tenant_id: str, *, operator: bool = False) -> str:
    """The subject of a development token: one per tenant, and one operator."""
    return OPERATOR_SUBJECT if operator else f"admin@{tenant_id}"


def admin_claims(
    issuer_url: str,
    client_id: str,
    subject: str,
    issued_at: int,
    *,
    ttl_seconds: int = 3600,
) -> dict[str, Any]:
    return {
        "iss": issuer_url,
        "sub": subject,
        "client_id": client_id,
        "token_use": "access",
        "scope": "openid email",
        "username": subject,
        "iat": issued_at,
        "exp": issued_at + ttl_seconds,
    }
