"""The WSGI application: routing, API authentication and scopes, faults, stats and Canvas headers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import admin, oauth
from .api import API_ROUTES, EXTRA_API_ROUTES, ApiContext, ApiHandler
from .serialize import iso
from .state import Fault, SimulatorState
from .throttle import HIGH_WATER_MARK
from .web import BEARER_CHALLENGE, NOT_FOUND_BODY, HttpError, json_response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger("rostersync_local.canvas_sim")

PlainHandler = Callable[[Request, SimulatorState], Response]
TRACKED_PREFIXES = ("/api/v1/", "/login/oauth2/")
STRING_IDS_MIMETYPE = "application/json+canvas-string-ids"
THROTTLED_BODY = "403 Forbidden (Rate Limit Exceeded)\n"

OAUTH_ROUTES: tuple[tuple[str, str, PlainHandler], ...] = (
    ("GET", "/login/oauth2/auth", oauth.authorize),
    ("POST", "/login/oauth2/accept", oauth.accept),
    ("POST", "/login/oauth2/token", oauth.token),
    ("DELETE", "/login/oauth2/token", oauth.logout),
)


def _werkzeug_path(route: str) -> str:
    """``/api/v1/courses/:course_id`` -> ``/api/v1/courses/<course_id>``."""
    return "/".join(f"<{part[1:]}>" if part.startswith(":") else part for part in route.split("/"))


def _api_error(status: int, message: str, *, challenge: bool, **extra: Any) -> Response:
    headers = {"WWW-Authenticate": BEARER_CHALLENGE} if challenge else None
    return json_response({"errors": [{"message": message, **extra}]}, status, headers)


def throttled_response(status: int = 403) -> Response:
    response = Response(THROTTLED_BODY, status=status, content_type="text/plain; charset=utf-8")
    response.headers["X-Rate-Limit-Remaining"] = "0.0"
    return response


def fault_response(state: SimulatorState, fault: Fault) -> Response:
    if fault.kind == "throttle":
        return throttled_response(fault.status)
    try:
        code = HTTPStatus(fault.status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        code = "error"
    body = {"errors": [{"message": "An error occurred.", "error_code": code}], "error_report_id": 12345}
    return json_response(body, fault.status)


class CanvasSimulatorApp:
    """Canvas LMS as seen by a roster-sync developer key. One lock serializes request handling."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.api_handlers: dict[str, ApiHandler] = {}
        self.plain_handlers: dict[str, PlainHandler] = {}
        rules: list[Rule] = []
        for method, route, api_handler in (*API_ROUTES, *EXTRA_API_ROUTES):
            endpoint = f"{method} {route}"
            self.api_handlers[endpoint] = api_handler
            rules.append(Rule(_werkzeug_path(route), endpoint=endpoint, methods=[method]))
        for method, route, handler in (*OAUTH_ROUTES, *admin.ADMIN_ROUTES):
            endpoint = f"{method} {route}"
            self.plain_handlers[endpoint] = handler
            rules.append(Rule(route, endpoint=endpoint, methods=[method]))
        self.url_map = Map(rules, strict_slashes=False, merge_slashes=False)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        started = time.perf_counter()
        response, credential = self.handle(request)
        cost = time.perf_counter() - started
        if "X-Rate-Limit-Remaining" not in response.headers:  # throttled responses carry no cost
            with self.state.lock:
                remaining = (
                    self.state.throttle.finish(credential, cost, self.state.now())
                    if credential is not None
                    else HIGH_WATER_MARK
                )
            response.headers["X-Request-Cost"] = f"{cost:.6f}"
            response.headers["X-Rate-Limit-Remaining"] = repr(float(remaining))
        logger.debug("%s %s -> %s", request.method, request.path, response.status_code)
        return response(environ, start_response)

    def handle(self, request: Request) -> tuple[Response, str | None]:
        """Answer ``request``; also returns the throttling credential (None when not an API call)."""
        adapter = self.url_map.bind_to_environ(request.environ)
        endpoint: str | None
        params: dict[str, Any]
        try:
            matched, matched_params = adapter.match()
            endpoint, params = str(matched), dict(matched_params)
        except HTTPException:
            endpoint, params = None, {}
        state = self.state
        with state.lock:
            if request.path.startswith(TRACKED_PREFIXES):
                route = endpoint or f"{request.method} (unmatched)"
                if endpoint is not None and request.method == "HEAD":
                    route = f"HEAD {endpoint.split(' ', 1)[1]}"
                state.stats.record(route)
                fault = state.take_fault(request.method, request.path)
                if fault is not None:
                    return fault_response(state, fault), None
            if endpoint is None:
                return json_response(NOT_FOUND_BODY, 404), None
            try:
                api_handler = self.api_handlers.get(endpoint)
                if api_handler is not None:
                    return self._api(request, endpoint, api_handler, params)
                return self.plain_handlers[endpoint](request, state, **params), None
            except HttpError as error:
                return error.response, None
            except Exception:
                logger.exception("unhandled error in %s %s", request.method, request.path)
                body = {
                    "errors": [{"message": "An error occurred.", "error_code": "internal_server_error"}],
                    "error_report_id": 12345,
                }
                return json_response(body, 500), None

    def _api(
        self, request: Request, endpoint: str, handler: ApiHandler, params: dict[str, Any]
    ) -> tuple[Response, str | None]:
        state = self.state
        raw_token = oauth.bearer_token(request)
        if raw_token is None:
            response = json_response(
                {"status": "unauthenticated", "errors": [{"message": "user authorization required"}]},
                401,
                {"WWW-Authenticate": BEARER_CHALLENGE},
            )
            return response, None
        grant = state.tokens.by_access_token(raw_token)
        if grant is None:
            return _api_error(401, "Invalid access token.", challenge=True), None
        now = state.now()
        if now >= grant.expires_at:
            expired = _api_error(
                401, "Expired access token.", challenge=True, expired_at=iso(grant.expires_at)
            )
            return expired, None
        method, route = endpoint.split(" ", 1)
        if f"url:{method}|{route}" not in grant.scopes:
            return _api_error(401, "Insufficient scopes on access token.", challenge=False), None
        credential = f"grant:{grant.id}"
        if not state.throttle.admit(credential, now):
            return throttled_response(), None
        accept = request.headers.get("Accept", "")
        ctx = ApiContext(
            request=request,
            state=state,
            grant=grant,
            ser=state.serializer(request.host_url),
            string_ids=STRING_IDS_MIMETYPE in accept,
        )
        try:
            return handler(ctx, **params), credential
        except HttpError as error:
            return error.response, credential
