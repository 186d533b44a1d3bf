"""An HTTP server that acts as API Gateway (HTTP API, payload 2.0) for the template's routes."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from rostersync_local.functions import Invocation
from rostersync_local.template import ACCOUNT_ID, JwtAuthorizerSpec, RouteSpec


@dataclass(frozen=True)
class _CompiledRoute:
    spec: RouteSpec
    pattern: re.Pattern[str]
    specificity: tuple[int, int]


def _compile(route: RouteSpec) -> _CompiledRoute:
    parts = []
    params = greedy = 0
    for part in route.path.strip("/").split("/"):
        if part.startswith("{") and part.endswith("+}"):
            parts.append(f"(?P<{part[1:-2]}>.+)")
            greedy += 1
        elif part.startswith("{") and part.endswith("}"):
            parts.append(f"(?P<{part[1:-1]}>[^/]+)")
            params += 1
        else:
            parts.append(re.escape(part))
    # API Gateway prefers literal segments over parameters, and parameters over greedy ones.
    return _CompiledRoute(route, re.compile("/" + "/".join(parts) + "$"), (greedy, params))


Authorize = Callable[[str, JwtAuthorizerSpec], dict[str, Any] | None]


class ApiGateway:
    def __init__(
        self, routes: Iterable[RouteSpec], invoke: Callable[[str, Any], Invocation], authorize: Authorize
    ) -> None:
        self._routes = sorted((_compile(route) for route in routes), key=lambda route: route.specificity)
        self._invoke = invoke
        self._authorize = authorize

    def match(self, method: str, path: str) -> tuple[RouteSpec, dict[str, str]] | None:
        for route in self._routes:
            found = route.pattern.match(path)
            if found and route.spec.method in (method, "ANY"):
                return route.spec, found.groupdict()
        return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        matched = self.match(request.method, request.path)
        if matched is None:
            response = Response('{"message":"Not Found"}', status=404, content_type="application/json")
            return response(environ, start_response)
        route, path_parameters = matched
        event = self.event(request, route, path_parameters)
        if route.authorizer is not None:
            # As an HttpApi JWT authorizer: no valid bearer token, no invocation.
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            claims = self._authorize(token.strip(), route.authorizer) if scheme.lower() == "bearer" else None
            if claims is None:
                unauthorized = Response(
                    '{"message":"Unauthorized"}', status=401, content_type="application/json"
                )
                unauthorized.headers["WWW-Authenticate"] = "Bearer"
                return unauthorized(environ, start_response)
            granted = str(claims.get("scope", "")).split()
            if route.scopes and not set(route.scopes) & set(granted):
                # AuthorizationScopes: a valid token without one of the route's scopes is refused.
                forbidden = Response('{"message":"Forbidden"}', status=403, content_type="application/json")
                return forbidden(environ, start_response)
            event["requestContext"]["authorizer"] = {
                "jwt": {
                    "claims": {name: str(value) for name, value in claims.items()},
                    "scopes": granted if route.scopes else None,
                }
            }
        invocation = self._invoke(route.function, event)
        return self.response(invocation)(environ, start_response)

    @staticmethod
    def event(request: Request, route: RouteSpec, path_parameters: dict[str, str]) -> dict[str, Any]:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        headers.setdefault("x-forwarded-proto", request.scheme)
        headers.setdefault("x-forwarded-for", request.remote_addr or "127.0.0.1")
        body = request.get_data()
        text_body: str | None = None
        is_base64 = False
        if body:
            try:
                text_body = body.decode()
            except UnicodeDecodeError:
                text_body, is_base64 = base64.b64encode(body).decode(), True
        now = time.time()
        route_key = f"{route.method} {route.path}" if route.method != "ANY" else f"ANY {route.path}"
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": request.path,
            "rawQueryString": request.query_string.decode(),
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": "local",
                "domainName": request.host,
                "domainPrefix": request.host.split(".")[0],
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": request.headers.get("User-Agent", ""),
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": route_key,
                "stage": "$default",
                "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now * 1000),
            },
            "body": text_body,
            "isBase64Encoded": is_base64,
        }
        if request.args:
            event["queryStringParameters"] = {
                key: ",".join(request.args.getlist(key)) for key in request.args
            }
        if path_parameters:
            event["pathParameters"] = path_parameters
        if request.cookies:
            event["cookies"] = [f"{name}={value}" for name, value in request.cookies.items()]
        return event

    @staticmethod
    def response(invocation: Invocation) -> Response:
        if invocation.error is not None:
            return Response(
                '{"message":"Internal Server Error"}', status=500, content_type="application/json"
            )
        payload = invocation.payload
        if not (isinstance(payload, dict) and "statusCode" in payload):
            # Payload 2.0 without a status code: API Gateway answers 200 with the result as JSON.
            return Response(json.dumps(payload), status=200, content_type="application/json")
        headers = Headers()
        for name, value in (payload.get("headers") or {}).items():
            headers.add(name, str(value))
        for name, values in (payload.get("multiValueHeaders") or {}).items():
            for value in values:
                headers.add(name, str(value))
        for cookie in payload.get("cookies") or []:
            headers.add("Set-Cookie", cookie)
        body = payload.get("body") or ""
        data = base64.b64decode(body) if payload.get("isBase64Encoded") else body.encode()
        return Response(data, status=int(payload["statusCode"]), headers=headers)


# The fixed moment, host and ids of events/ samples (the functions never check them; API Gateway did).
SAMPLE_HOST = "abc123.execute-api.us-east-1.amazonaws.com"
SAMPLE_EPOCH_MS = 1795710000000
SAMPLE_REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
SAMPLE_SOURCE_IP = "203.0.113.7"


def sample_event(
    routes: Iterable[RouteSpec],
    method: str,
    target: str,
    *,
    body: str | None = None,
    claims: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The event API Gateway sends a route's function for `METHOD target` (a path and query), at the
    samples' fixed moment; `claims` as its JWT authorizer passes a verified token's (as strings)."""
    gateway = ApiGateway(routes, lambda function, event: Invocation(), lambda token, authorizer: None)
    path, _, query = target.partition("?")
    matched = gateway.match(method, path)
    if matched is None:
        raise ValueError(f"the template has no route for {method} {path}")
    route, path_parameters = matched
    if route.authorizer is not None and claims is None:
        raise ValueError(f"{method} {path} is behind the JWT authorizer: give the token's claims")
    headers = {"User-Agent": "Mozilla/5.0", "X-Forwarded-Proto": "https", "X-Forwarded-For": SAMPLE_SOURCE_IP}
    if body is not None:
        headers["Content-Type"] = "application/json"
    environ = EnvironBuilder(
        path=path,
        base_url=f"https://{SAMPLE_HOST}",
        query_string=query,
        method=method,
        headers=list(headers.items()),
        data=body,
        environ_base={"REMOTE_ADDR": SAMPLE_SOURCE_IP},
    ).get_environ()
    event = gateway.event(Request(environ), route, path_parameters)
    context = event["requestContext"]
    context.update(
        apiId=SAMPLE_HOST.split(".", maxsplit=1)[0],
        requestId=SAMPLE_REQUEST_ID,
        time=datetime.fromtimestamp(SAMPLE_EPOCH_MS / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        timeEpoch=SAMPLE_EPOCH_MS,
    )
    if route.authorizer is not None and claims is not None:
        context["authorizer"] = {
            "jwt": {"claims": {name: str(value) for name, value in claims.items()}, "scopes": None}
        }
    return event
