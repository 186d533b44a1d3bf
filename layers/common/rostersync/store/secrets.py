"""One Secrets Manager secret per tenant holds its client secret and Canvas tokens."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cached_property
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from pydantic import BaseModel, SecretStr


def reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


class TenantCredentials(BaseModel):
    client_secret: SecretStr
    # The Canvas origin and developer key the secret was saved for: it is only ever sent there.
    canvas_origin: str | None = None
    client_id: str | None = None
    refresh_token: SecretStr | None = None
    access_token: SecretStr | None = None
    access_token_expires_at: datetime | None = None
    # When the access token was issued: its lifetime sets how early it is refreshed.
    access_token_issued_at: datetime | None = None

    def to_secret_string(self) -> str:
        return json.dumps(
            {
                "client_secret": reveal(self.client_secret),
                "canvas_origin": self.canvas_origin,
                "client_id": self.client_id,
                "refresh_token": reveal(self.refresh_token),
                "access_token": reveal(self.access_token),
                "access_token_expires_at": (
                    self.access_token_expires_at.isoformat() if self.access_token_expires_at else None
                ),
                "access_token_issued_at": (
                    self.access_token_issued_at.isoformat() if self.access_token_issued_at else None
                ),
            }
        )


class TenantSecretStore:
    def __init__(self, prefix: str, client: Any = None) -> None:
        self._prefix = prefix.rstrip("/")
        if client is not None:
            self._client = client

    # Made when first used: a function that never reads a secret never pays for the client at cold start.
    @cached_property
    def _client(self) -> Any:
        return boto3.client("secretsmanager")

    @cached_property
    def _provider(self) -> SecretsProvider:
        return SecretsProvider(boto3_client=self._client)

    def _name(self, tenant_id: str) -> str:
        return f"{self._prefix}/{tenant_id}"

    def create(self, tenant_id: str, credentials: TenantCredentials) -> None:
        self._client.create_secret(
            Name=self._name(tenant_id),
            SecretString=credentials.to_secret_string(),
            Description="rostersync: Canvas client secret and tokens of one tenant",
        )

    def read(self, tenant_id: str, *, fresh: bool = False) -> TenantCredentials:
        # Cached for a minute per warm container; `fresh` after Canvas rejected the cached token.
        value = self._provider.get(self._name(tenant_id), max_age=60, transform="json", force_fetch=fresh)
        return TenantCredentials.model_validate(value)

    def save_client_secret(
        self, tenant_id: str, client_secret: str, *, canvas_origin: str, client_id: str, keep_tokens: bool
    ) -> None:
        """A new Client Secret for one Canvas origin and key (created on the first save); tokens of
        another key are dropped."""
        saved = TenantCredentials.model_validate(
            {"client_secret": client_secret, "canvas_origin": canvas_origin, "client_id": client_id}
        )
        try:
            self._client.describe_secret(SecretId=self._name(tenant_id))
        except self._client.exceptions.ResourceNotFoundException:
            self.create(tenant_id, saved)
            return
        if keep_tokens:
            current = self.read(tenant_id, fresh=True)
            saved = current.model_copy(
                update={
                    "client_secret": saved.client_secret,
                    "canvas_origin": canvas_origin,
                    "client_id": client_id,
                }
            )
        self.write(tenant_id, saved)

    def delete(self, tenant_id: str) -> None:
        # A recovery window rather than a forced delete: an operator's mistake can still be undone.
        self._client.delete_secret(SecretId=self._name(tenant_id), RecoveryWindowInDays=7)
        self._provider.clear_cache()  # type: ignore[no-untyped-call]

    def write(self, tenant_id: str, credentials: TenantCredentials) -> None:
        self._client.put_secret_value(
            SecretId=self._name(tenant_id), SecretString=credentials.to_secret_string()
        )
        # The next read must see what we just wrote, not the cached value.
        self._provider.clear_cache()  # type: ignore[no-untyped-call]
