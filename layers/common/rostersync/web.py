"""Helpers for HTTP handlers (not for logic): our public base URL, small HTML pages, and the admin API's
request plumbing (claims, body parsing, middlewares)."""

from __future__ import annotations

from html import escape
from typing import TypeVar

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, ForbiddenError, UnauthorizedError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel, ValidationError

from rostersync.services import shared_services
from rostersync.sign_in import AdminSession, SignInError, admin_session

# Everything the pages need comes from our own origin; nothing may frame them or run inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def public_base_url(event: APIGatewayProxyEventV2) -> str:
    """The URL the caller used to reach the API (API Gateway sets Host and X-Forwarded-Proto)."""
    headers = {name.lower(): value for name, value in (event.headers or {}).items()}
    host = headers.get("host") or event.request_context.domain_name
    proto = headers.get("x-forwarded-proto", "https")
    stage = event.request_context.stage
    prefix = "" if not stage or stage == "$default" else f"/{stage}"
    return f"{proto}://{host}{prefix}"


def html_page(status_code: int, title: str, message: str) -> Response[str]:
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} - rostersync</title></head>"
        f"<body><main><h1>{escape(title)}</h1><p>{escape(message)}</p></main></body></html>"
    )
    return Response(
        status_code=status_code,
        content_type=content_types.TEXT_HTML,
        body=body,
        headers={"Cache-Control": "no-store", **SECURITY_HEADERS},
    )


# -- the admin API's request plumbing ------------------------------------------------------------------
# The header naming the tenant the admin acts for (the page's tenant picker); checked against the admin's
# memberships on every request. Needed only by an admin of several tenants.
TENANT_HEADER = "x-rostersync-tenant"
# The cookie /oauth/start sets and /oauth/callback must get back: it binds a state to one browser.
OAUTH_BROWSER_COOKIE = "rostersync_oauth"
MAX_ADMIN_BODY_BYTES = 1024 * 1024  # the largest form is a course sync list CSV
ADMIN_SESSION = "admin_session"  # the resolver context's key (set by admin_sessions)

Form = TypeVar("Form", bound=BaseModel)


def jwt_claims(event: APIGatewayProxyEventV2) -> dict[str, object]:
    """The claims API Gateway's JWT authorizer verified (locally, the runner's authorizer)."""
    return dict(event.request_context.authorizer.jwt_claim or {})


def console_security_policy(sign_in_origins: list[str]) -> str:
    """The settings page's CSP: as every page's, but the page also calls its identity provider."""
    return CONTENT_SECURITY_POLICY.replace(
        "connect-src 'self'", " ".join(["connect-src 'self'", *sign_in_origins])
    )


def admin_sessions(resolver: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[object]:
    """Every /admin/ request: who the token's subject is to rostersync (memberships, operator), read now,
    so a removed admin is refused at their next request."""
    event = resolver.current_event
    if event.path.startswith("/admin/"):
        headers = {name.lower(): value for name, value in (event.headers or {}).items()}
        try:
            session = admin_session(shared_services(), jwt_claims(event), headers.get(TENANT_HEADER) or None)
        except SignInError as error:
            return Response(error.status, content_types.APPLICATION_JSON, {"error": str(error)})
        resolver.context[ADMIN_SESSION] = session
    return next_middleware(resolver)


def signed_in(router: BaseRouter) -> AdminSession:
    session = router.context.get(ADMIN_SESSION)
    if not isinstance(session, AdminSession):
        raise UnauthorizedError("not signed in")
    return session


def signed_in_tenant(router: BaseRouter) -> str:
    """The tenant the signed-in admin acts for, among their memberships; never a path or body value."""
    session = signed_in(router)
    if session.tenant_id is None:
        raise ForbiddenError(
            "you administer no tenant"
            if not session.tenants
            else "choose a tenant (the X-Rostersync-Tenant header)"
        )
    return session.tenant_id


def signed_in_admin(router: BaseRouter) -> str:
    """Who is acting, as records name them: the admin's email."""
    return signed_in(router).email


def is_operator(router: BaseRouter) -> bool:
    return signed_in(router).operator


def parsed_body(event: APIGatewayProxyEventV2, model: type[Form], **overrides: object) -> Form:
    """The JSON body as `model` (overrides win: the tenant comes from the token); a clear 400 otherwise."""
    try:
        body = event.json_body if event.body else {}
    except ValueError:
        raise BadRequestError("the body is not JSON") from None
    except RecursionError:
        raise BadRequestError("the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequestError("the body is not a JSON object")
    try:
        return model.model_validate({**body, **overrides})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadRequestError(f"invalid request: {where}: {first['msg']}") from None


def security_headers(resolver: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[object]:
    response = next_middleware(resolver)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def guard_state_changes(
    resolver: APIGatewayHttpResolver, next_middleware: NextMiddleware
) -> Response[object]:
    """A size cap, and the CSRF defence of every state-changing route on top of the bearer token (which
    browsers never send on their own): a JSON body (a cross-site form cannot send one without a refused
    CORS preflight) and, when the browser says where the request comes from, our own origin."""
    event = resolver.current_event
    if event.http_method != "GET":
        if len(event.body or "") > MAX_ADMIN_BODY_BYTES:
            return Response(413, content_types.APPLICATION_JSON, {"error": "the request body is too large"})
        headers = {name.lower(): value for name, value in (event.headers or {}).items()}
        if not headers.get("content-type", "").startswith(content_types.APPLICATION_JSON):
            return Response(415, content_types.APPLICATION_JSON, {"error": "send a JSON body"})
        own_origin = "/".join(public_base_url(event).split("/")[:3])
        if headers.get("origin", own_origin) != own_origin:
            return Response(403, content_types.APPLICATION_JSON, {"error": "cross-origin request refused"})
        if headers.get("sec-fetch-site", "same-origin") not in {"same-origin", "none"}:
            return Response(403, content_types.APPLICATION_JSON, {"error": "cross-site request refused"})
    return next_middleware(resolver)
