"""``/_sim/*`` admin endpoints (no authentication; for tests and local tools)."""

from __future__ import annotations

import re
from typing import Any

from werkzeug.wrappers import Request, Response

from .api import DEFAULT_SCOPES
from .state import Fault, SimulatorState
from .web import HttpError, json_response

_SCOPE_RE = re.compile(r"^url:(GET|POST|PUT|PATCH|DELETE|HEAD)\|/\S+$")


def _body(request: Request) -> dict[str, Any]:
    if not request.get_data():
        return {}
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise HttpError(json_response({"error": "expected a JSON object body"}, 400))
    return body


def _error(message: str) -> HttpError:
    return HttpError(json_response({"error": message}, 400))


def health(request: Request, state: SimulatorState) -> Response:
    return json_response({"status": "ok"})


def create_developer_key(request: Request, state: SimulatorState) -> Response:
    body = _body(request)
    redirect_uri = body.get("redirect_uri")
    if not isinstance(redirect_uri, str) or not redirect_uri:
        raise _error("redirect_uri is required")
    name = body.get("name") or "Developer Key"
    if not isinstance(name, str):
        raise _error("name must be a string")
    scopes = body.get("scopes")
    if scopes is None:
        scopes = list(DEFAULT_SCOPES)
    if not isinstance(scopes, list) or not all(isinstance(s, str) and _SCOPE_RE.match(s) for s in scopes):
        raise _error("scopes must be a list of 'url:<VERB>|<path>' strings")
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


def update_config(request: Request, state: SimulatorState) -> Response:
    body = _body(request)
    unknown = set(body) - {"auto_approve", "token_ttl_seconds"}
    if unknown:
        raise _error(f"unsupported config keys: {sorted(unknown)}")
    if "auto_approve" in body:
        if not isinstance(body["auto_approve"], bool):
            raise _error("auto_approve must be a boolean")
        state.config.auto_approve = body["auto_approve"]
    if "token_ttl_seconds" in body:
        ttl = body["token_ttl_seconds"]
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0:
            raise _error("token_ttl_seconds must be a non-negative integer")
        state.config.token_ttl_seconds = ttl
    return json_response(state.config.to_dict())


def list_faults(request: Request, state: SimulatorState) -> Response:
    return json_response({"faults": [f.public() for f in state.faults]})


def add_fault(request: Request, state: SimulatorState) -> Response:
    body = _body(request)
    status = body.get("status", 500)
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise _error("status must be an integer between 400 and 599")
    pattern = body.get("path_regex", "")
    if not isinstance(pattern, str):
        raise _error("path_regex must be a string")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise _error(f"invalid path_regex: {exc}") from exc
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise _error("count must be a positive integer")
    method = body.get("method")
    if method is not None and not isinstance(method, str):
        raise _error("method must be a string")
    kind = body.get("kind", "error")
    if kind not in {"error", "throttle"}:
        raise _error("kind must be 'error' or 'throttle'")
    state.add_fault(Fault(status, compiled, count, method.upper() if method else None, kind))
    return json_response({"faults": [f.public() for f in state.faults]}, 201)


def clear_faults(request: Request, state: SimulatorState) -> Response:
    state.faults.clear()
    return json_response({"faults": []})


def expire_all_tokens(request: Request, state: SimulatorState) -> Response:
    count = state.tokens.expire_all(state.now())
    return json_response({"expired": count})


ADMIN_ROUTES = (
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
)
