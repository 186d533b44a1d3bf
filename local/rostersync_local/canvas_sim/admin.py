"""``/_sim/*`` admin endpoints (no authentication; for tests and local tools)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from .api import DEFAULT_SCOPES
from .changes import CHANGE_ROUTES
from .config import COST_MODELS, SimulatorConfig
from .serialize import iso
from .state import FAULT_KINDS, Fault, SimulatorState
from .web import json_response, sim_error, sim_json_body

_SCOPE_RE = re.compile(r"^url:(GET|POST|PUT|PATCH|DELETE|HEAD)\|/\S+$")
# Settings ``POST /_sim/config`` may change at run time, by expected JSON type.
BOOL_SETTINGS = frozenset({"auto_approve", "throttle"})
NUMBER_SETTINGS = frozenset(
    {"throttle_high_water", "throttle_maximum", "throttle_leak_per_second", "throttle_up_front_cost",
     "request_cost_base", "request_cost_per_item", "cpu_seconds_per_item", "latency_ms", "latency_jitter_ms",
     "fault_rate", "timeout_rate", "reset_rate", "timeout_stall_seconds"}
)  # fmt: skip
RUNTIME_SETTINGS = BOOL_SETTINGS | NUMBER_SETTINGS | {
    "token_ttl_seconds", "throttle_style", "cost_model", "fault_seed"
}  # fmt: skip


def health(request: Request, state: SimulatorState) -> Response:
    return json_response({"status": "ok"})


def create_developer_key(request: Request, state: SimulatorState) -> Response:
    body = sim_json_body(request)
    redirect_uri = body.get("redirect_uri")
    if not isinstance(redirect_uri, str) or not redirect_uri:
        raise sim_error("redirect_uri is required")
    name = body.get("name") or "Developer Key"
    if not isinstance(name, str):
        raise sim_error("name must be a string")
    scopes = body.get("scopes")
    if scopes is None:
        scopes = list(DEFAULT_SCOPES)
    if not isinstance(scopes, list) or not all(isinstance(s, str) and _SCOPE_RE.match(s) for s in scopes):
        raise sim_error("scopes must be a list of 'url:<VERB>|<path>' strings")
    key = state.tokens.register_key(name, redirect_uri, tuple(dict.fromkeys(scopes)))
    return json_response({**key.public(), "client_secret": key.client_secret}, 201)


def ground_truth(request: Request, state: SimulatorState) -> Response:
    return json_response(state.ground_truth(request.host_url))


def stats(request: Request, state: SimulatorState) -> Response:
    return json_response(state.stats.snapshot())


def reset_stats(request: Request, state: SimulatorState) -> Response:
    state.stats.reset()
    return json_response(state.stats.snapshot())


def get_config(request: Request, state: SimulatorState) -> Response:
    return json_response(state.config.to_dict())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _setting(name: str, value: Any) -> Any:
    """``value`` checked and converted for the config field ``name``."""
    if name in BOOL_SETTINGS:
        if not isinstance(value, bool):
            raise sim_error(f"{name} must be a boolean")
        return value
    if name in NUMBER_SETTINGS:
        if not (_is_int(value) or isinstance(value, float)):
            raise sim_error(f"{name} must be a number")
        return float(value)
    if name == "token_ttl_seconds":
        if not _is_int(value) or value < 0:
            raise sim_error("token_ttl_seconds must be a non-negative integer")
        return value
    if name == "throttle_style":
        if str(value) not in {"403", "429"} or isinstance(value, bool):
            raise sim_error("throttle_style must be '403' or '429'")
        return str(value)
    if name == "cost_model":
        if value not in COST_MODELS:
            raise sim_error("cost_model must be 'documented' or 'stress'")
        return value
    if value is not None and not _is_int(value):  # fault_seed
        raise sim_error("fault_seed must be an integer or null")
    return value


def update_config(request: Request, state: SimulatorState) -> Response:
    """Change run-time settings; all-or-nothing (an invalid combination changes nothing).

    Posting ``fault_seed`` (even the same value) restarts the random fault and latency sequences.
    """
    body = sim_json_body(request)
    unknown = set(body) - RUNTIME_SETTINGS
    if unknown:
        raise sim_error(f"unsupported config keys: {sorted(unknown)}")
    changes = {name: _setting(name, value) for name, value in body.items()}
    try:
        candidate: SimulatorConfig = dataclasses.replace(state.config, **changes)
    except ValueError as exc:
        raise sim_error(str(exc)) from exc
    for name in changes:  # the same object: the throttle and handlers read it live
        setattr(state.config, name, getattr(candidate, name))
    if "fault_seed" in changes:
        state.reseed_faults()
    return json_response(state.config.to_dict())


def list_faults(request: Request, state: SimulatorState) -> Response:
    return json_response({"faults": [f.public() for f in state.faults]})


def add_fault(request: Request, state: SimulatorState) -> Response:
    body = sim_json_body(request)
    status = body.get("status", 500)
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise sim_error("status must be an integer between 400 and 599")
    pattern = body.get("path_regex", "")
    if not isinstance(pattern, str):
        raise sim_error("path_regex must be a string")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise sim_error(f"invalid path_regex: {exc}") from exc
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise sim_error("count must be a positive integer")
    method = body.get("method")
    if method is not None and not isinstance(method, str):
        raise sim_error("method must be a string")
    kind = body.get("kind", "error")
    if kind not in FAULT_KINDS:
        raise sim_error(f"kind must be one of {', '.join(repr(k) for k in FAULT_KINDS)}")
    state.add_fault(Fault(status, compiled, count, method.upper() if method else None, kind))
    return json_response({"faults": [f.public() for f in state.faults]}, 201)


def clear_faults(request: Request, state: SimulatorState) -> Response:
    state.faults.clear()
    return json_response({"faults": []})


def expire_all_tokens(request: Request, state: SimulatorState) -> Response:
    count = state.tokens.expire_all(state.now())
    return json_response({"expired": count})


def list_tokens(request: Request, state: SimulatorState) -> Response:
    """Live grants without secrets: ``[{"client_id", "scopes_count", "expires_at", "refresh_count"}]``."""
    return json_response([
        {"client_id": grant.client_id, "scopes_count": len(grant.scopes), "expires_at": iso(grant.expires_at),
         "refresh_count": grant.refresh_count}
        for grant in sorted(state.tokens.grants.values(), key=lambda g: g.id)
    ])  # fmt: skip


def issued_secrets(request: Request, state: SimulatorState) -> Response:
    """Test support: every client secret, authorization code, access and refresh token issued so far."""
    return json_response(list(state.tokens.issued_secrets))


def revoke_tokens(request: Request, state: SimulatorState) -> Response:
    """Delete grants like an admin deleting the integration's token: ``{"access_token": ...}`` (that grant)
    or ``{"client_id": ...}`` (every grant of the developer key). Answers ``{"revoked": <count>}``."""
    body = sim_json_body(request)
    access_token, client_id = body.get("access_token"), body.get("client_id")
    if (access_token is None) == (client_id is None):
        raise sim_error("give exactly one of access_token or client_id")
    if access_token is not None:
        if not isinstance(access_token, str):
            raise sim_error("access_token must be a string")
        found = state.tokens.by_access_token(access_token)
        grants = [found] if found is not None else []
    else:
        if not isinstance(client_id, str | int) or isinstance(client_id, bool):
            raise sim_error("client_id must be a string")
        grants = state.tokens.grants_of(str(client_id))
    for grant in grants:
        state.tokens.revoke(grant)
    return json_response({"revoked": len(grants)})


def set_developer_key_scopes(request: Request, state: SimulatorState, client_id: str) -> Response:
    """Replace a key's scopes. Removing a scope deletes every grant of the key; adding does not extend them.

    Answers the key (without its secret) plus ``"invalidated_tokens": <count>``.
    """
    key = state.tokens.developer_keys.get(client_id)
    if key is None:
        raise sim_error("unknown developer key", 404)
    scopes = sim_json_body(request).get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) and _SCOPE_RE.match(s) for s in scopes):
        raise sim_error("scopes must be a list of 'url:<VERB>|<path>' strings")
    invalidated = state.tokens.set_key_scopes(key, tuple(dict.fromkeys(scopes)))
    return json_response({**key.public(), "invalidated_tokens": invalidated})


AdminHandler = Callable[..., Response]  # (request, state, **route params)
ADMIN_ROUTES: tuple[tuple[str, str, AdminHandler], ...] = (
    ("GET", "/_sim/health", health),
    ("POST", "/_sim/developer_keys", create_developer_key),
    ("GET", "/_sim/ground_truth", ground_truth),
    ("GET", "/_sim/stats", stats),
    ("POST", "/_sim/stats/reset", reset_stats),
    ("GET", "/_sim/config", get_config),
    ("POST", "/_sim/config", update_config),
    ("GET", "/_sim/faults", list_faults),
    ("POST", "/_sim/faults", add_fault),
    ("DELETE", "/_sim/faults", clear_faults),
    ("POST", "/_sim/tokens/expire_all", expire_all_tokens),
    ("GET", "/_sim/tokens", list_tokens),
    ("GET", "/_sim/issued_secrets", issued_secrets),
    ("POST", "/_sim/tokens/revoke", revoke_tokens),
    ("POST", "/_sim/developer_keys/:client_id/scopes", set_developer_key_scopes),
    *CHANGE_ROUTES,  # /_sim/changes/*, /_sim/live_events*, /_sim/jwks.json
)
