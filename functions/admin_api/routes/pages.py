"""The public pages: health, the settings page's files, and the OAuth start link."""

from pathlib import Path

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from rostersync.authorization import canvas_authorize_redirect
from rostersync.services import shared_services
from rostersync.sign_in import identity_provider_origins, sign_in_configuration
from rostersync.tenants import TenantError
from rostersync.web import OAUTH_BROWSER_COOKIE, console_security_policy, html_page, public_base_url

CONSOLE = Path(__file__).parents[1] / "console"
CONSOLE_FILES = {
    "index.html": content_types.TEXT_HTML,
    "app.js": "text/javascript",
    "app.css": "text/css",
    # Vendored unmodified (no build step): oidc-client-ts 3.5.0's browser build, and its licence.
    "oidc-client-ts.min.js": "text/javascript",
    "oidc-client-ts.LICENSE.txt": "text/plain",
}

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
services = shared_services()


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/console")
def console_page() -> Response[str]:
    page = console_file("index.html")
    issuer = sign_in_configuration(services).issuer
    page.headers["Content-Security-Policy"] = console_security_policy(
        identity_provider_origins(issuer) if issuer else []
    )
    return page


@router.get("/console/sign-in")
def console_sign_in() -> dict[str, object]:
    """What the page signs in with: the identity provider's issuer and the page's client id."""
    return sign_in_configuration(services).model_dump()


@router.get("/console/<name>")
def console_file(name: str) -> Response[str]:
    if name not in CONSOLE_FILES:
        raise NotFoundError()
    return Response(200, CONSOLE_FILES[name], (CONSOLE / name).read_text(encoding="utf-8"))


@router.get("/oauth/start")
def oauth_start() -> Response[str]:
    base_url = public_base_url(router.current_event)
    try:
        redirect = canvas_authorize_redirect(
            services, router.current_event.get_query_string_value("state"), f"{base_url}/oauth/callback"
        )
    except TenantError as error:
        return html_page(400, "Cannot start the Canvas authorization", str(error))
    # The callback must come back to this browser: the cookie binds the state to it (login CSRF defence).
    cookie = Cookie(
        OAUTH_BROWSER_COOKIE,
        redirect.browser_binding,
        path="/oauth/callback",
        secure=base_url.startswith("https://"),
        http_only=True,
        max_age=services.settings.oauth_state_ttl_seconds,
        same_site=SameSite.LAX_MODE,
    )
    return Response(302, headers={"Location": redirect.location}, body="", cookies=[cookie])
