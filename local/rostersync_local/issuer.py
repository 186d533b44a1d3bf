"""The local stack's stand-in for the admins' identity provider, and API Gateway's JWT authorizer check.

It signs development tokens (`rostersync admin token`) and verifies them the way an HttpApi JWT
authorizer does: signature by the issuer's key, `iss` equal to the configured issuer, `aud` among the
configured audiences, `exp`/`nbf` in force.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from werkzeug.wrappers import Request

from rostersync_local.template import JwtAuthorizerSpec


def admin_claims(
    issuer_url: str,
    audience: str,
    tenant_id: str,
    issued_at: int,
    *,
    operator: bool = False,
    ttl_seconds: int = 3600,
) -> dict[str, Any]:
    """The claims of a tenant admin's token (with `operator`, of an operator's)."""
    claims: dict[str, Any] = {
        "iss": issuer_url,
        "aud": audience,
        "sub": f"admin@{tenant_id}",
        "iat": issued_at,
        "exp": issued_at + ttl_seconds,
        "rostersync:tenant": tenant_id,
    }
    if operator:
        claims["rostersync:operator"] = "true"
    return claims


class LocalIssuer:
    def __init__(self, issuer_url: str, audience: str = "rostersync-admin") -> None:
        self.issuer_url = issuer_url
        self.audience = audience
        self._kid = "local-" + secrets.token_hex(4)
        self._key = RSAKey.generate_key(2048, parameters={"kid": self._kid})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self._key.as_dict(private=False), "alg": "RS256", "use": "sig"}]}

    def openid_configuration(self) -> dict[str, Any]:
        return {"issuer": self.issuer_url, "jwks_uri": f"{self.issuer_url}/.well-known/jwks.json"}

    def issue(self, tenant_id: str, *, operator: bool = False, ttl_seconds: int = 3600) -> str:
        claims = admin_claims(
            self.issuer_url,
            self.audience,
            tenant_id,
            int(time.time()),
            operator=operator,
            ttl_seconds=ttl_seconds,
        )
        return jwt.encode({"alg": "RS256", "kid": self._kid}, claims, self._key)

    def issue_client(self, client_id: str, scope: str, audience: str, *, ttl_seconds: int = 3600) -> str:
        """A machine client's access token, as a client-credentials grant returns it (the seam the
        embedded identity provider replaces): its client id and the scopes granted."""
        now = int(time.time())
        claims = {
            "iss": self.issuer_url,
            "aud": audience,
            "sub": client_id,
            "client_id": client_id,
            "scope": scope,
            "token_use": "access",
            "iat": now,
            "exp": now + ttl_seconds,
        }
        return jwt.encode({"alg": "RS256", "kid": self._kid}, claims, self._key)

    def verify(self, token: str, authorizer: JwtAuthorizerSpec) -> dict[str, Any] | None:
        """The token's claims when API Gateway would let it through, else None."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=["RS256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": authorizer.issuer},
                aud={"essential": True, "values": list(authorizer.audience)},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError):
            return None
        return dict(decoded.claims)


GRANTABLE_SCOPES = frozenset({"rosters/read"})


class MachineClients:
    """The local stand-in for the identity provider's machine clients (Cognito app clients with a
    secret): it holds each client's secret (hashed) and answers the client-credentials grant."""

    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}
        self._lock = threading.Lock()

    def register(self) -> dict[str, str]:
        client_id, secret = "c" + secrets.token_hex(12), secrets.token_urlsafe(32)
        with self._lock:
            self._secrets[client_id] = hashlib.sha256(secret.encode()).hexdigest()
        return {"client_id": client_id, "client_secret": secret}

    def remove(self, client_id: str) -> None:
        with self._lock:
            self._secrets.pop(client_id, None)

    def _authenticated(self, request: Request) -> str | None:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        with self._lock:
            expected = self._secrets.get(client_id)
        presented = hashlib.sha256(secret.encode()).hexdigest()
        return client_id if expected is not None and hmac.compare_digest(expected, presented) else None

    def token(self, request: Request, issue: Callable[[str, str], str]) -> tuple[dict[str, Any], int]:
        """RFC 6749 4.4: grant_type=client_credentials with HTTP Basic client authentication."""
        if request.form.get("grant_type") != "client_credentials":
            return {"error": "unsupported_grant_type"}, 400
        client_id = self._authenticated(request)
        if client_id is None:
            return {"error": "invalid_client"}, 401
        asked = set(request.form.get("scope", " ".join(sorted(GRANTABLE_SCOPES))).split())
        if not asked or not asked <= GRANTABLE_SCOPES:
            return {"error": "invalid_scope"}, 400
        scope = " ".join(sorted(asked))
        token = {
            "access_token": issue(client_id, scope),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": scope,
        }
        return token, 200
