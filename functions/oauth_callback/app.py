"""Canvas redirects the admin's browser here after the authorize page."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.shared.cookies import Cookie
from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.authorization import complete_authorization
from rostersync.services import Services
from rostersync.tenants import TenantError
from rostersync.tracing import traced
from rostersync.web import OAUTH_BROWSER_COOKIE, SECURITY_HEADERS, html_page, public_base_url

logger = Logger()
app = APIGatewayHttpResolver()
services = Services.from_environment()


def browser_binding() -> str | None:
    """The cookie /oauth/start set on the browser that began this authorization."""
    for cookie in app.current_event.cookies or []:
        name, _, value = cookie.strip().partition("=")
        if name == OAUTH_BROWSER_COOKIE:
            return value
    return None


@app.get("/oauth/callback")
def oauth_callback() -> Response[str]:
    event = app.current_event
    try:
        tenant = complete_authorization(
            services,
            event.get_query_string_value("state"),
            event.get_query_string_value("code"),
            event.get_query_string_value("error"),
            browser_binding(),
        )
    except TenantError as error:
        logger.warning("authorization not completed", extra={"reason": str(error)})
        return html_page(400, "Canvas authorization not completed", str(error))
    logger.info(
        "tenant connected", extra={"tenant_id": tenant.tenant_id, "root_account_id": tenant.root_account_id}
    )
    # Back to the settings page, which shows who authorized and for which root account.
    spent = Cookie(OAUTH_BROWSER_COOKIE, "", path="/oauth/callback", http_only=True, max_age=0)
    return Response(
        302,
        headers={
            "Location": f"{public_base_url(event)}/console?connected={tenant.tenant_id}",
            **SECURITY_HEADERS,
        },
        body="",
        cookies=[spent],
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@traced
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    return app.resolve(event, context)
