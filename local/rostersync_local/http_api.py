"""The template's HTTP API in moto, with its JWT authorizers: `rostersync client add|remove` rewrite the
delivery API's audience there with the same calls as on a deployed stack, and the local API Gateway
checks tokens against the audience moto holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from rostersync_local.api_gateway import Authorize
from rostersync_local.template import JwtAuthorizerSpec, RouteSpec


def create_authorizers(apigateway: Any, api_id: str, routes: Iterable[RouteSpec]) -> None:
    """The routes' JWT authorizers, as the template declares them."""
    specs = {route.authorizer.name: route.authorizer for route in routes if route.authorizer is not None}
    for spec in specs.values():
        apigateway.create_authorizer(
            ApiId=api_id,
            Name=spec.name,
            AuthorizerType="JWT",
            IdentitySource=["$request.header.Authorization"],
            JwtConfiguration={"Issuer": spec.issuer, "Audience": list(spec.audience)},
        )


class LiveAudienceAuthorizer:
    """Verifies a token against its authorizer's audience as moto holds it now. The list is read again
    only when a token's audience is not in the copy held (a client added since), so requests cost no call;
    a removed client's token still passes here until then, and the delivery function's registry check
    refuses it (401), as it does on a deployed stack while API Gateway redeploys."""

    def __init__(self, apigateway: Any, api_id: str, verify: Authorize) -> None:
        self._apigateway = apigateway
        self._api_id = api_id
        self._verify = verify
        self._audiences: dict[str, tuple[str, ...]] = {}

    def _read(self, name: str) -> tuple[str, ...]:
        authorizers = self._apigateway.get_authorizers(ApiId=self._api_id)["Items"]
        found = next(item for item in authorizers if item["Name"] == name)
        self._audiences[name] = tuple(found["JwtConfiguration"]["Audience"])
        return self._audiences[name]

    def __call__(self, token: str, spec: JwtAuthorizerSpec) -> dict[str, Any] | None:
        held = self._audiences.get(spec.name)
        claims = self._verify(token, replace(spec, audience=held)) if held is not None else None
        if claims is None:
            current = self._read(spec.name)
            if current != held:
                claims = self._verify(token, replace(spec, audience=current))
        return claims
