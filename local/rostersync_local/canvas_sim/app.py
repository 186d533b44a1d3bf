"""The WSGI application: routing, API authentication and scopes, throttling, faults, latency, stats, headers.

Request life cycle (``state.lock`` is held only for the bracketed steps, never while a request waits):

1. [count the request in the stats; take a one-shot ``/_sim/faults`` rule or draw a random fault; draw the
   latency] - faults apply before authentication, like a broken proxy in front of Canvas;
2. a ``reset`` fault closes the connection now; an ``error``/``throttle`` fault answers after the latency;
   a ``timeout`` fault stalls ``timeout_stall_seconds`` and then the request goes on normally;
3. API routes: [authenticate, check scopes, admit into the grant's leaky bucket (up-front cost)] - a refused
   request answers the rate-limit response without running; then sleep the latency (in flight, so up-front
   costs of concurrent requests overlap); then [run the handler]; then [finish in the bucket: refund the
   up-front cost, add the real cost] -> ``X-Request-Cost`` and ``X-Rate-Limit-Remaining``. The real cost
   follows ``config.cost_model`` (:meth:`SimulatorConfig.request_cost`): by default the request's server
   time, the latency slept plus a per-item CPU term;
4. other routes: [run the handler] (a handler marked ``without_state_lock`` runs without the lock: the
   live-event log, flush and signing-key endpoints, which only use the dispatcher's own lock).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import admin, oauth
from .api import API_ROUTES, EXTRA_API_ROUTES, ApiContext, ApiHandler
from .serialize import iso
from .state import Fault, Grant, SimulatorState
from .web import BEARER_CHALLENGE, NOT_FOUND_BODY, HttpError, json_response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger("rostersync_local.canvas_sim")

PlainHandler = Callable[..., Response]  # (request, state, **route params)
TRACKED_PREFIXES = ("/api/v1/", "/login/oauth2/")
STRING_IDS_MIMETYPE = "application/json+canvas-string-ids"
API_PREFIX = "/api/v1/"
THROTTLED_BODY = "403 Forbidden (Rate Limit Exceeded)\n"
GENERIC_ERROR_REPORT_ID = 12345

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
    """Canvas's rate-limit answer: plain text, ``X-Rate-Limit-Remaining: 0.0``, no ``X-Request-Cost``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Forbidden"
    body = THROTTLED_BODY if status == 403 else f"{status} {phrase} (Rate Limit Exceeded)\n"
    response = Response(body, status=status, content_type="text/plain; charset=utf-8")
    response.headers["X-Rate-Limit-Remaining"] = "0.0"
    return response


def error_response(status: int) -> Response:
    """Canvas's generic error body for ``status`` (``error_code`` is the snake-cased reason phrase)."""
    try:
        code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        code = "error"
    body = {
        "errors": [{"message": "An error occurred.", "error_code": code}],
        "error_report_id": GENERIC_ERROR_REPORT_ID,
    }
    return json_response(body, status)


def fault_response(state: SimulatorState, fault: Fault) -> Response:
    if fault.kind == "throttle":
        return throttled_response(fault.status)
    return error_response(fault.status)


def _number(value: float) -> str:
    """A float header value as Canvas (Ruby ``Float#to_s``) prints it: ``600.0``, ``1.02``."""
    return repr(float(round(value, 6)))


class ConnectionDropped(Exception):
    """Raised inside the app to close the client's connection without sending any response."""


def _drop_connection(environ: WSGIEnvironment) -> None:
    """Shut the request's socket down so the client sees the connection closed and no response."""
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # the client may have gone away first
            sock.shutdown(socket.SHUT_RDWR)
    # werkzeug treats ConnectionError from the application as a dropped connection: it writes nothing
    raise ConnectionResetError("canvas_sim: injected connection reset")


class CanvasSimulatorApp:
    """Canvas LMS as seen by a roster-sync developer key (thread-safe; see the module doc for locking)."""

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
            rules.append(Rule(_werkzeug_path(route), endpoint=endpoint, methods=[method]))
        self.url_map = Map(rules, strict_slashes=False, merge_slashes=False)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.handle(request)
        except ConnectionDropped:
            logger.debug("%s %s -> connection reset", request.method, request.path)
            _drop_connection(environ)
        logger.debug("%s %s -> %s", request.method, request.path, response.status_code)
        return response(environ, start_response)

    def _match(self, request: Request) -> tuple[str | None, dict[str, Any]]:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            matched, matched_params = adapter.match()
        except HTTPException:
            return None, {}
        return str(matched), dict(matched_params)

    def handle(self, request: Request) -> Response:
        """Answer ``request`` (raises :class:`ConnectionDropped` for an injected connection reset)."""
        endpoint, params = self._match(request)
        state = self.state
        is_api = request.path.startswith(API_PREFIX)
        route = endpoint or f"{request.method} (unmatched)"
        if endpoint is not None and request.method == "HEAD":
            route = f"HEAD {endpoint.split(' ', 1)[1]}"
        fault: Fault | None = None  # a one-shot /_sim/faults rule (takes precedence over random faults)
        kind: str | None = None  # the injected fault's kind, if any
        delay = 0.0
        with state.lock:
            if request.path.startswith(TRACKED_PREFIXES):
                state.stats.record(route)
                fault = state.take_fault(request.method, request.path)
                kind = fault.kind if fault is not None else state.draw_fault() if is_api else None
                if kind is not None:
                    state.stats.record_fault(kind)
            if is_api:
                delay = state.draw_latency()
            stall = state.config.timeout_stall_seconds
        if kind == "reset":
            raise ConnectionDropped
        if kind == "timeout":
            state.sleep(stall)
        elif fault is not None or kind == "error":
            state.sleep(delay)
            response = fault_response(state, fault) if fault is not None else error_response(500)
            return self._with_cost_headers(response, None, 0, delay)
        if endpoint is None:
            state.sleep(delay)
            return self._with_cost_headers(json_response(NOT_FOUND_BODY, 404), None, 0, delay)
        api_handler = self.api_handlers.get(endpoint)
        if api_handler is not None:
            return self._api(request, route, endpoint, api_handler, params, delay)
        handler = self.plain_handlers[endpoint]
        if getattr(handler, "without_state_lock", False):  # waits, or uses only its own locks
            response = self._run(request, lambda: handler(request, state, **params))
            return self._with_cost_headers(response, None, 0)
        with state.lock:
            response = self._run(request, lambda: handler(request, state, **params))
            return self._with_cost_headers(response, None, 0)

    def _run(self, request: Request, call: Callable[[], Response]) -> Response:
        """``call()``, turning :class:`HttpError` into its response and anything else into Canvas's 500."""
        try:
            return call()
        except HttpError as error:
            return error.response
        except Exception:
            logger.exception("unhandled error in %s %s", request.method, request.path)
            return error_response(500)

    def _with_cost_headers(
        self, response: Response, credential: str | None, items: int, server_seconds: float = 0.0
    ) -> Response:
        """Add ``X-Request-Cost`` and ``X-Rate-Limit-Remaining`` (settles the bucket of ``credential``)."""
        if "X-Rate-Limit-Remaining" in response.headers:  # a throttled response carries no cost
            return response
        state = self.state
        with state.lock:
            config = state.config
            cost = config.request_cost(items, server_seconds)
            if credential is not None:
                state.stats.record_cost(cost, server_seconds)
                remaining = state.throttle.finish(credential, cost, state.now())
            else:
                remaining = config.throttle_high_water
        response.headers["X-Request-Cost"] = _number(cost)
        response.headers["X-Rate-Limit-Remaining"] = _number(max(0.0, remaining))
        return response

    def _api(  # noqa: PLR0917 - private helper of handle()
        self,
        request: Request,
        route: str,
        endpoint: str,
        handler: ApiHandler,
        params: dict[str, Any],
        delay: float,
    ) -> Response:
        state = self.state
        with state.lock:
            grant = self._authenticate(request, endpoint)
            credential = f"grant:{grant.id}" if isinstance(grant, Grant) else ""
            admitted = isinstance(grant, Grant) and state.throttle.admit(credential, state.now())
            if isinstance(grant, Grant) and not admitted:
                state.stats.record_throttled(route)
            throttle_status = 429 if state.config.throttle_style == "429" else 403
        if not isinstance(grant, Grant):
            state.sleep(delay)
            return self._with_cost_headers(grant, None, 0, delay)
        if not admitted:
            state.sleep(delay)
            return throttled_response(throttle_status)
        response = error_response(500)  # replaced below; the bucket is settled whatever happens
        items = 0
        with state.lock:
            state.stats.enter_flight()
        try:
            state.sleep(delay)  # the request "works" while holding its up-front cost, outside the lock
            with state.lock:
                ctx = ApiContext(
                    request=request,
                    state=state,
                    grant=grant,
                    ser=state.serializer(request.host_url),
                    string_ids=STRING_IDS_MIMETYPE in request.headers.get("Accept", ""),
                )
                response = self._run(request, lambda: handler(ctx, **params))
                items = ctx.item_count
        finally:
            with state.lock:
                state.stats.leave_flight()
            self._with_cost_headers(response, credential, items, delay)
        return response

    def _authenticate(self, request: Request, endpoint: str) -> Response | Grant:
        """The grant of the request's token, or the 401 Canvas answers. Callers hold the lock."""
        state = self.state
        raw_token = oauth.bearer_token(request)
        if raw_token is None:
            return json_response(
                {"status": "unauthenticated", "errors": [{"message": "user authorization required"}]},
                401,
                {"WWW-Authenticate": BEARER_CHALLENGE},
            )
        grant = state.tokens.by_access_token(raw_token)
        if grant is None:
            return _api_error(401, "Invalid access token.", challenge=True)
        if state.now() >= grant.expires_at:
            return _api_error(401, "Expired access token.", challenge=True, expired_at=iso(grant.expires_at))
        method, route = endpoint.split(" ", 1)
        if f"url:{method}|{route}" not in grant.scopes:
            return _api_error(401, "Insufficient scopes on access token.", challenge=False)
        return grant
