"""Canvas redirects the admin's browser here after the authorize page."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.services import Services
from rostersync.tenants import TenantError, complete_authorization
from rostersync.web import html_page

logger = Logger()
tracer = Tracer()
app = APIGatewayHttpResolver()
services = Services.from_environment()


@app.get("/oauth/callback")
def oauth_callback() -> Response[str]:
    event = app.current_event
    try:
        tenant = complete_authorization(
            services,
            event.get_query_string_value("state"),
            event.get_query_string_value("code"),
            event.get_query_string_value("error"),
        )
    except TenantError as error:
        logger.warning("authorization not completed", extra={"reason": str(error)})
        return html_page(400, "Canvas authorization not completed", str(error))
    logger.info(
        "tenant connected", extra={"tenant_id": tenant.tenant_id, "root_account_id": tenant.root_account_id}
    )
    return html_page(
        200,
        "Connected to Canvas",
        f"{tenant.name} is connected (Canvas root account {tenant.root_account_id}). "
        "You can close this page.",
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    return app.resolve(event, context)
