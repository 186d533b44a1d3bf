"""Admin HTTP API: the OAuth start link, and health."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.services import Services
from rostersync.tenants import TenantError, canvas_authorize_redirect
from rostersync.web import html_page, public_base_url

logger = Logger()
tracer = Tracer()
app = APIGatewayHttpResolver()
services = Services.from_environment()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/oauth/start")
def oauth_start() -> Response[str]:
    state = app.current_event.get_query_string_value("state")
    redirect_uri = f"{public_base_url(app.current_event)}/oauth/callback"
    try:
        location = canvas_authorize_redirect(services, state, redirect_uri)
    except TenantError as error:
        return html_page(400, "Cannot start the Canvas authorization", str(error))
    return Response(status_code=302, headers={"Location": location, "Cache-Control": "no-store"}, body="")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    return app.resolve(event, context)
