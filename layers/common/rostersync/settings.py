"""Deployment settings, read once from the function's environment (set by template.yaml)."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, Field


class Settings(BaseModel):
    table_name: str
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
    # At most this many workers call one tenant's Canvas at once (a leased slot each), so a large
    # tenant neither trips its own rate limit nor takes every worker from the others.
    canvas_concurrency_per_tenant: int = Field(default=3, ge=1)
    canvas_slot_wait_seconds: float = Field(default=60.0, ge=0)
    canvas_slot_lease_seconds: int = Field(default=150, gt=0)
    manual_sync_cooldown_seconds: int = Field(default=60, ge=0)
    live_events_queue_url: str = ""
    grades_queue_url: str = ""
    live_events_jwks_url: str = "https://8axpcl50e4.execute-api.us-east-1.amazonaws.com/main/jwks"
    # On (prod): the public HTTPS intake refuses unsigned events, and the consumer drops any it forwarded.
    require_signed_live_events: bool = False
    # What an unsigned HTTPS event may cost a tenant: course re-reads per minute (anyone can post one).
    unsigned_live_event_rereads_per_minute: int = Field(default=30, ge=0)
    # A verified event (signed, or from Canvas Data Services) asks for a full sync at most this often.
    live_event_full_sync_cooldown_seconds: int = Field(default=900, ge=0)


_ENVIRONMENT = {
    "table_name": "ROSTER_TABLE_NAME",
    "course_sync_queue_url": "COURSE_SYNC_QUEUE_URL",
    "sync_request_queue_url": "SYNC_REQUEST_QUEUE_URL",
    "tenant_secret_prefix": "TENANT_SECRET_PREFIX",
    "allow_insecure_canvas_urls": "ALLOW_INSECURE_CANVAS_URLS",
    "course_sync_max_receive_count": "COURSE_SYNC_MAX_RECEIVE_COUNT",
    "canvas_timeout_seconds": "CANVAS_TIMEOUT_SECONDS",
    "token_refresh_margin_seconds": "TOKEN_REFRESH_MARGIN_SECONDS",
    "oauth_state_ttl_seconds": "OAUTH_STATE_TTL_SECONDS",
    "canvas_concurrency_per_tenant": "CANVAS_CONCURRENCY_PER_TENANT",
    "canvas_slot_wait_seconds": "CANVAS_SLOT_WAIT_SECONDS",
    "canvas_slot_lease_seconds": "CANVAS_SLOT_LEASE_SECONDS",
    "manual_sync_cooldown_seconds": "MANUAL_SYNC_COOLDOWN_SECONDS",
    "live_events_queue_url": "LIVE_EVENTS_QUEUE_URL",
    "grades_queue_url": "GRADES_QUEUE_URL",
    "live_events_jwks_url": "LIVE_EVENTS_JWKS_URL",
    "require_signed_live_events": "REQUIRE_SIGNED_LIVE_EVENTS",
    "unsigned_live_event_rereads_per_minute": "UNSIGNED_LIVE_EVENT_REREADS_PER_MINUTE",
    "live_event_full_sync_cooldown_seconds": "LIVE_EVENT_FULL_SYNC_COOLDOWN_SECONDS",
}


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    values = {field: os.environ[name] for field, name in _ENVIRONMENT.items() if name in os.environ}
    return Settings.model_validate(values)
