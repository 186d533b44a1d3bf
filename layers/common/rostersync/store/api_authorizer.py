"""The HTTP API's JWT authorizer of the delivery API (/v1): the audience list API Gateway checks.

Cognito's client-credentials access tokens carry `client_id` and no `aud`, and API Gateway then checks
`client_id` against the authorizer's audience: every machine client's id has to be in that list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import boto3

DELIVERY_AUTHORIZER_NAME = "ClientJwt"  # template.yaml: the HttpApi's Auth.Authorizers


class AuthorizerNotFoundError(LookupError):
    pass


class ApiAuthorizer:
    def __init__(self, api_id: str, name: str = DELIVERY_AUTHORIZER_NAME, client: Any = None) -> None:
        self.api_id = api_id
        self.name = name
        self._apigateway = client or boto3.client("apigatewayv2")

    def _current(self) -> dict[str, Any]:
        """The authorizer as deployed (found by name: SAM makes it inside the HttpApi, so no output can
        name its id)."""
        pages = self._apigateway.get_paginator("get_authorizers").paginate(ApiId=self.api_id)
        for page in pages:
            for authorizer in page["Items"]:
                if authorizer["Name"] == self.name:
                    return dict(authorizer)
        raise AuthorizerNotFoundError(f"the HTTP API {self.api_id} has no authorizer named {self.name}")

    def audience(self) -> list[str]:
        return [str(value) for value in self._current()["JwtConfiguration"].get("Audience", [])]

    def set_audience(self, audience: Sequence[str]) -> None:
        current = self._current()
        self._apigateway.update_authorizer(
            ApiId=self.api_id,
            AuthorizerId=current["AuthorizerId"],
            # The whole configuration: the issuer is sent back as it is.
            JwtConfiguration={"Issuer": current["JwtConfiguration"]["Issuer"], "Audience": list(audience)},
        )
