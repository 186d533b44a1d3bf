"""Deployment settings, read once from the function's environment (set by template.yaml).

A plain pydantic model fed the variables it names: pydantic-settings did the same for about 0.04 s of
every cold start (its sources for files, secrets and command lines, none of which a function reads)."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError


class Settings(BaseModel):
    """Each field is read from the environment variable of its name in capitals (ROSTER_TABLE_NAME for
    the table); constructed with keywords, as tests and the CLI do, by field name."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    table_name: str = Field(validation_alias=AliasChoices("table_name", "ROSTER_TABLE_NAME"))
    course_sync_queue_url: str
    sync_request_queue_url: str
    tenant_secret_prefix: str
    # Development only: lets the local stack talk to the simulator over http on loopback.
    allow_insecure_canvas_urls: bool = False
    course_sync_max_receive_count: int = Field(default=3, ge=1)
    canvas_timeout_seconds: float = Field(default=20.0, gt=0)
    # Refresh access tokens this long before Canvas says they expire (a quarter of a short lifetime at most).
    token_refresh_margin_seconds: int = Field(default=300, ge=0)
    oauth_state_ttl_seconds: int = Field(default=600, gt=0)
    # The Canvas requests a tenant may have in flight before its answers say more (or fewer) fit: the
    # limit then follows X-Rate-Limit-Remaining (rostersync.canvas.concurrency), shared by the tenant's
    # workers through leased slots, so a large tenant neither trips its own rate limit nor takes every
    # worker from the others.
    canvas_concurrency_per_tenant: int = Field(default=6, ge=1)
    canvas_slot_wait_seconds: float = Field(default=60.0, ge=0)
    canvas_slot_lease_seconds: int = Field(default=150, gt=0)
    manual_sync_cooldown_seconds: int = Field(default=60, ge=0)
    # The admins' sign-in (template.yaml): the OIDC issuer, and the settings page's client id, or the
    # stack's own user pool to find it in.
    admin_sign_in_issuer: str = ""
    admin_sign_in_client_id: str = ""
    admin_user_pool_id: str = ""
    # Development only (the local stack): the page also takes a token from its URL fragment.
    development_tokens: bool = Field(
        default=False, validation_alias=AliasChoices("development_tokens", "ROSTERSYNC_DEVELOPMENT_TOKENS")
    )
    live_events_queue_url: str = ""
    grades_queue_url: str = ""
    live_events_jwks_url: str = "https://8axpcl50e4.execute-api.us-east-1.amazonaws.com/main/jwks"
    # On (prod): the public HTTPS intake refuses unsigned events, and the consumer drops any it forwarded.
    require_signed_live_events: bool = False
    # What an unsigned HTTPS event may cost a tenant: course re-reads per minute (anyone can post one).
    unsigned_live_event_rereads_per_minute: int = Field(default=30, ge=0)
    # A verified event (signed, or from Canvas Data Services) asks for a full sync at most this often.
    live_event_full_sync_cooldown_seconds: int = Field(default=900, ge=0)
    # How long the change feed keeps a change (a cursor older than that is answered 410).
    feed_retention_days: int = Field(default=30, ge=1)
    roster_event_bus_name: str = ""
    # DeliveryAudienceFunction only: the HTTP API whose /v1 authorizer's audience it keeps in step with
    # the registry, and the audience the stack always accepts there (the ClientJwtAudience parameter).
    delivery_api_id: str = ""
    client_jwt_audience: str = ""


def _variable_names() -> dict[str, str]:
    """Each field's environment variable, by field name."""
    names = {}
    for name, field in Settings.model_fields.items():
        aliases = field.validation_alias.choices if isinstance(field.validation_alias, AliasChoices) else []
        names[name] = next((str(a) for a in aliases if str(a).isupper()), name.upper())
    return names


def environment_variables() -> set[str]:
    """The variables the settings read (what template.yaml may pass to a function)."""
    return set(_variable_names().values())


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """The settings from the environment; a required variable missing or a malformed value fails here,
    at the function's import, naming the variable (not its value)."""
    variables = _variable_names()
    values = {name: os.environ[variable] for name, variable in variables.items() if variable in os.environ}
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(
            f"{variables.get(str(problem['loc'][0]), problem['loc'][0])}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ValueError(f"the function's environment: {problems}") from None
