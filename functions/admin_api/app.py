"""Admin HTTP API: the OAuth start link, health, and the signed-in admin's own tenant."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, NotFoundError, UnauthorizedError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from rostersync import admin
from rostersync.grades.passback import UnknownBatchError, batch_status, submit_batch
from rostersync.models import GradeBatch
from rostersync.services import Services
from rostersync.sync.planner import SyncCooldownError
from rostersync.sync.reports import sync_errors, sync_errors_csv
from rostersync.tenants import TenantError, UnknownTenantError, canvas_authorize_redirect
from rostersync.web import html_page, public_base_url

TENANT_CLAIM = "rostersync:tenant"

logger = Logger()
tracer = Tracer()
app = APIGatewayHttpResolver()
services = Services.from_environment()


def signed_in_tenant() -> str:
    """The tenant named in the admin's verified token (API Gateway's JWT authorizer checked it)."""
    claims = app.current_event.request_context.authorizer.jwt_claim or {}
    tenant_id = claims.get(TENANT_CLAIM)
    if not tenant_id:
        raise UnauthorizedError("the token names no tenant")
    return str(tenant_id)


@app.exception_handler(UnknownTenantError)  # type: ignore[untyped-decorator]
def unknown_tenant(error: UnknownTenantError) -> Response[dict[str, str]]:
    return Response(status_code=404, content_type=content_types.APPLICATION_JSON, body={"error": str(error)})


@app.exception_handler(TenantError)  # type: ignore[untyped-decorator]
def refused(error: TenantError) -> Response[dict[str, str]]:
    return Response(status_code=400, content_type=content_types.APPLICATION_JSON, body={"error": str(error)})


@app.exception_handler(SyncCooldownError)  # type: ignore[untyped-decorator]
def cooling_down(error: SyncCooldownError) -> Response[dict[str, str]]:
    return Response(
        status_code=429,
        content_type=content_types.APPLICATION_JSON,
        body={"error": str(error), "retry_at": error.retry_at.isoformat()},
        headers={"Retry-After": error.retry_at.strftime("%a, %d %b %Y %H:%M:%S GMT")},
    )


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


@app.get("/admin/tenant")
def tenant() -> dict[str, object]:
    return admin.tenant_overview(
        services, signed_in_tenant(), f"{public_base_url(app.current_event)}/oauth/callback"
    )


@app.get("/admin/runs")
def runs() -> list[dict[str, object]]:
    return admin.recent_runs(services, signed_in_tenant())


@app.post("/admin/sync")
def sync_now() -> Response[dict[str, str]]:
    body = app.current_event.json_body if app.current_event.body else {}
    course_ids = tuple(int(course_id) for course_id in (body or {}).get("course_ids", []))
    run_id = admin.sync_now(services, signed_in_tenant(), course_ids)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body={"run_id": run_id})


@app.get("/admin/errors")
def errors() -> Response[str] | list[dict[str, object]]:
    found = sync_errors(services, signed_in_tenant(), app.current_event.get_query_string_value("run"))
    if app.current_event.get_query_string_value("format") == "csv":
        return Response(status_code=200, content_type="text/csv", body=sync_errors_csv(found))
    return [error.model_dump(mode="json") for error in found]


@app.post("/admin/grades")
def push_grades() -> Response[dict[str, str]]:
    # The batch is the tenant's own whatever the body says: the tenant comes from the token only.
    try:
        batch = GradeBatch.model_validate(
            {**(app.current_event.json_body or {}), "tenant_id": signed_in_tenant()}
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadRequestError(f"invalid grade batch: {where}: {first['msg']}") from None
    batch_id = submit_batch(services, batch.tenant_id, batch)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body={"batch_id": batch_id})


@app.get("/admin/grades/<batch_id>")
def grade_batch(batch_id: str) -> dict[str, object]:
    try:
        return batch_status(services, signed_in_tenant(), batch_id)
    except UnknownBatchError as error:
        raise NotFoundError(str(error)) from error


@app.get("/admin/holds")
def holds() -> list[dict[str, object]]:
    return admin.held_syncs(services, signed_in_tenant())


@app.post("/admin/holds/<course_id>/<decision>")
def decide(course_id: str, decision: str) -> dict[str, object]:
    if decision not in {"approve", "reject"} or not course_id.isdigit():
        raise NotFoundError()
    return admin.decide_hold(services, signed_in_tenant(), int(course_id), approve=decision == "approve")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    return app.resolve(event, context)
