"""Admin HTTP API and the LMS settings page: the signed-in admin's own tenant, and the OAuth start link.

The routes live in routes/, one module per area; this module wires them, the middlewares, and the one
mapping of the library's errors to HTTP answers.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from routes import connection, grades, holds, pages, session, syncing  # beside this file in the package

from rostersync.canvas.errors import CanvasError
from rostersync.grades.batches import UnknownBatchError
from rostersync.sync.requesting import SyncCooldownError
from rostersync.tenant_settings import ConfirmationNeededError
from rostersync.tenants import CanvasSettingsError, TenantError, UnknownTenantError
from rostersync.tracing import traced
from rostersync.web import admin_sessions, guard_state_changes, security_headers

logger = Logger()
app = APIGatewayHttpResolver()
app.use(middlewares=[security_headers, guard_state_changes, admin_sessions])
for area in (pages, session, connection, syncing, holds, grades):
    app.include_router(area.router)


@app.exception_handler(CanvasSettingsError)  # type: ignore[untyped-decorator]
def invalid_setting(error: CanvasSettingsError) -> Response[dict[str, str]]:
    return Response(
        status_code=400,
        content_type=content_types.APPLICATION_JSON,
        body={"error": str(error), "field": error.field},
    )


@app.exception_handler(ConfirmationNeededError)  # type: ignore[untyped-decorator]
def needs_confirmation(error: ConfirmationNeededError) -> Response[dict[str, object]]:
    # The page asks the admin this question and sends the same request again with "confirm": true.
    body: dict[str, object] = {"error": str(error), "confirm": str(error)}
    return Response(status_code=409, content_type=content_types.APPLICATION_JSON, body=body)


@app.exception_handler(UnknownTenantError)  # type: ignore[untyped-decorator]
def unknown_tenant(error: UnknownTenantError) -> Response[dict[str, str]]:
    return Response(status_code=404, content_type=content_types.APPLICATION_JSON, body={"error": str(error)})


@app.exception_handler(TenantError)  # type: ignore[untyped-decorator]
def refused(error: TenantError) -> Response[dict[str, str]]:
    return Response(status_code=400, content_type=content_types.APPLICATION_JSON, body={"error": str(error)})


@app.exception_handler(CanvasError)  # type: ignore[untyped-decorator]
def canvas_failed(error: CanvasError) -> Response[dict[str, str]]:
    # Canvas, not this request, failed (unreachable, refused, a scope missing): a gateway error, with why.
    logger.warning("canvas call failed", extra={"code": error.code, "status": error.status})
    return Response(
        status_code=502,
        content_type=content_types.APPLICATION_JSON,
        body={"error": f"Canvas: {error}", "code": error.code},
    )


@app.exception_handler(SyncCooldownError)  # type: ignore[untyped-decorator]
def cooling_down(error: SyncCooldownError) -> Response[dict[str, str]]:
    return Response(
        status_code=429,
        content_type=content_types.APPLICATION_JSON,
        body={"error": str(error), "retry_at": error.retry_at.isoformat()},
        headers={"Retry-After": error.retry_at.strftime("%a, %d %b %Y %H:%M:%S GMT")},
    )


@app.exception_handler(UnknownBatchError)  # type: ignore[untyped-decorator]
def unknown_batch(error: UnknownBatchError) -> Response[dict[str, object]]:
    # Shaped as Powertools' own NotFoundError answers (the other routes' 404s).
    return Response(404, content_types.APPLICATION_JSON, {"statusCode": 404, "message": str(error)})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@traced
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    grades.grade_push_idempotency.register_lambda_context(
        context
    )  # a push cut off by the timeout can be resent
    return app.resolve(event, context)
