"""The local stack's stand-in for the admins' identity provider, and API Gateway's JWT authorizer check.

It signs development tokens (`rostersync admin token`) and verifies them the way an HttpApi JWT
authorizer does: signature by the issuer's key, `iss` equal to the configured issuer, `aud` among the
configured audiences, `exp`/`nbf` in force.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from rostersync_local.template import JwtAuthorizerSpec


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
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer_url,
            "aud": self.audience,
            "sub": f"admin@{tenant_id}",
            "iat": now,
            "exp": now + ttl_seconds,
            "rostersync:tenant": tenant_id,
        }
        if operator:
            claims["rostersync:operator"] = "true"
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
