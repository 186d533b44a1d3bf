"""Admin HTTP API and the LMS settings page: the signed-in admin's own tenant, and the OAuth start link."""

from pathlib import Path
from typing import TypeVar

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    ServiceError,
    UnauthorizedError,
)
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.shared.cookies import Cookie, SameSite
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ValidationError

from rostersync import admin
from rostersync.canvas.errors import CanvasError, CanvasNotFoundError
from rostersync.grades.live_results import live_assessment_results
from rostersync.grades.passback import UnknownBatchError, batch_status, submit_batch
from rostersync.grades.verify import verify_batch
from rostersync.models import GradeBatch, parse_canvas_id
from rostersync.services import Services
from rostersync.sync.planner import SyncCooldownError
from rostersync.sync.reports import export_roster, roster_totals, sync_errors, sync_errors_csv
from rostersync.tenants import CanvasSettingsError, TenantError, UnknownTenantError, canvas_authorize_redirect
from rostersync.web import SECURITY_HEADERS, html_page, public_base_url

TENANT_CLAIM = "rostersync:tenant"
OPERATOR_CLAIM = "rostersync:operator"
OAUTH_BROWSER_COOKIE = "rostersync_oauth"
MAX_BODY_BYTES = 1024 * 1024  # the largest form is a course sync list CSV
CONSOLE = Path(__file__).parent / "console"
CONSOLE_FILES = {
    "index.html": content_types.TEXT_HTML,
    "app.js": "text/javascript",
    "app.css": "text/css",
}

logger = Logger()
tracer = Tracer()
app = APIGatewayHttpResolver()
services = Services.from_environment()
Form = TypeVar("Form", bound=BaseModel)


def _claims() -> dict[str, object]:
    return dict(app.current_event.request_context.authorizer.jwt_claim or {})


def signed_in_tenant() -> str:
    """The tenant named in the admin's verified token (API Gateway's JWT authorizer checked it)."""
    tenant_id = _claims().get(TENANT_CLAIM)
    if not tenant_id:
        raise UnauthorizedError("the token names no tenant")
    return str(tenant_id)


def signed_in_admin() -> str:
    """Who is acting, as records name them: the token's email when it carries one, else its subject."""
    claims = _claims()
    return str(claims.get("email") or claims.get("sub") or "unknown admin")


def parsed(model: type[Form], **overrides: object) -> Form:
    try:
        body = app.current_event.json_body if app.current_event.body else {}
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
        if len(event.body or "") > MAX_BODY_BYTES:
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


app.use(middlewares=[security_headers, guard_state_changes])


@app.exception_handler(CanvasSettingsError)  # type: ignore[untyped-decorator]
def invalid_setting(error: CanvasSettingsError) -> Response[dict[str, str]]:
    return Response(
        status_code=400,
        content_type=content_types.APPLICATION_JSON,
        body={"error": str(error), "field": error.field},
    )


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


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/console")
def console_page() -> Response[str]:
    return console_file("index.html")


@app.get("/console/<name>")
def console_file(name: str) -> Response[str]:
    if name not in CONSOLE_FILES:
        raise NotFoundError()
    return Response(200, CONSOLE_FILES[name], (CONSOLE / name).read_text(encoding="utf-8"))


@app.get("/oauth/start")
def oauth_start() -> Response[str]:
    base_url = public_base_url(app.current_event)
    try:
        redirect = canvas_authorize_redirect(
            services, app.current_event.get_query_string_value("state"), f"{base_url}/oauth/callback"
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


@app.get("/admin/tenant")
def tenant() -> dict[str, object]:
    return admin.tenant_overview(
        services, signed_in_tenant(), f"{public_base_url(app.current_event)}/oauth/callback"
    )


@app.get("/admin/roster/totals")
def roster_counts() -> dict[str, int]:
    return roster_totals(export_roster(services, signed_in_tenant()))


@app.get("/admin/runs")
def runs() -> list[dict[str, object]]:
    return admin.recent_runs(services, signed_in_tenant())


@app.post("/admin/settings/canvas")
def save_canvas_settings() -> dict[str, object]:
    return admin.save_settings(services, signed_in_tenant(), parsed(admin.CanvasSettingsForm))


@app.post("/admin/authorization")
def generate_key() -> dict[str, str]:
    """The Generate Key button: a start link bound to this admin and tenant, single use, 10 minutes."""
    start_url = admin.start_authorization(
        services, signed_in_tenant(), signed_in_admin(), public_base_url(app.current_event)
    )
    return {"start_url": start_url}


@app.post("/admin/self-test")
def connection_self_test() -> dict[str, object]:
    report = admin.self_test(services, signed_in_tenant())
    return {**report.model_dump(mode="json"), "passed": report.passed}


@app.post("/admin/courses/sync-list")
def course_sync_list() -> dict[str, object]:
    return admin.update_course_list(services, signed_in_tenant(), parsed(admin.CourseListForm))


@app.post("/admin/courses/all")
def sync_all_courses() -> dict[str, object]:
    form = parsed(admin.AllCoursesForm)
    return admin.sync_all_courses_of(services, signed_in_tenant(), form.account_id)


@app.post("/admin/tenants")
def add_tenant() -> Response[dict[str, object]]:
    if str(_claims().get(OPERATOR_CLAIM)).lower() != "true":
        raise ForbiddenError("only an operator creates tenants")
    created = admin.add_tenant(services, parsed(admin.NewTenantForm))
    return Response(201, content_types.APPLICATION_JSON, created)


@app.post("/admin/sync")
def sync_now() -> Response[dict[str, str]]:
    run_id = admin.sync_now(services, signed_in_tenant(), parsed(admin.SyncNowForm).course_ids)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body={"run_id": run_id})


@app.get("/admin/errors")
def errors() -> Response[str] | list[dict[str, object]]:
    found = sync_errors(services, signed_in_tenant(), app.current_event.get_query_string_value("run"))
    if app.current_event.get_query_string_value("format") == "csv":
        return Response(status_code=200, content_type="text/csv", body=sync_errors_csv(found))
    return [error.model_dump(mode="json") for error in found]


# A push resent with its idempotency_key (say after a timeout) answers the first push's batch id for a day;
# the key with other grades is refused. Keyed per tenant; the batch id itself is always the server's.
grade_push_idempotency = IdempotencyConfig(
    event_key_jmespath="[tenant_id, idempotency_key]",
    payload_validation_jmespath="[course_id, assignment, grades]",
    expires_after_seconds=86400,
)
grade_push_records = DynamoDBPersistenceLayer(
    table_name=services.settings.table_name, key_attr="pk", sort_key_attr="sk", expiry_attr="expires_at"
)


@idempotent_function(  # type: ignore[untyped-decorator]
    data_keyword_argument="batch", config=grade_push_idempotency, persistence_store=grade_push_records
)
def submit_once(batch: GradeBatch) -> str:
    return submit_batch(services, batch.tenant_id, batch)


@app.post("/admin/grades")
def push_grades() -> Response[dict[str, str]]:
    # The batch is the tenant's own whatever the body says: the tenant comes from the token only.
    batch = parsed(GradeBatch, tenant_id=signed_in_tenant())
    try:
        batch_id = (
            submit_once(batch=batch)
            if batch.idempotency_key
            else submit_batch(services, batch.tenant_id, batch)
        )
    except IdempotencyValidationError:
        raise ServiceError(409, "this idempotency_key was used for other grades; use a new key") from None
    except IdempotencyAlreadyInProgressError:
        raise ServiceError(
            409, "a push with this idempotency_key is still being stored; send it again"
        ) from None
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body={"batch_id": batch_id})


@app.get("/admin/grades/<batch_id>")
def grade_batch(batch_id: str) -> dict[str, object]:
    try:
        return batch_status(services, signed_in_tenant(), batch_id)
    except UnknownBatchError as error:
        raise NotFoundError(str(error)) from error


@app.get("/admin/grades/<batch_id>/verify")
def verify_grades(batch_id: str) -> dict[str, object]:
    """Read the batch's grades back from Canvas and compare them with what was sent."""
    try:
        verification = verify_batch(services, signed_in_tenant(), batch_id)
    except UnknownBatchError as error:
        raise NotFoundError(str(error)) from error
    return {**verification.model_dump(mode="json"), "all_match": verification.all_match}


@app.get("/admin/courses/<course_id>/live-assessments/<assessment_id>/results")
def live_results(course_id: str, assessment_id: str) -> dict[str, object]:
    """A live assessment's pass/fail results, read from the token's tenant's Canvas (`?user_id=` filters)."""
    course, assessment = parse_canvas_id(course_id), parse_canvas_id(assessment_id)
    if course is None or assessment is None:
        raise NotFoundError()
    user_text = app.current_event.get_query_string_value("user_id")
    user_id = parse_canvas_id(user_text) if user_text is not None else None
    if user_text is not None and user_id is None:
        raise BadRequestError("user_id must be a Canvas user id")
    try:
        results = live_assessment_results(services, signed_in_tenant(), course, assessment, user_id)
    except CanvasNotFoundError as error:
        raise NotFoundError(f"no live assessment {assessment} in course {course}") from error
    return {
        "course_id": course,
        "assessment_id": assessment,
        "results": [result.model_dump(mode="json") for result in results],
    }


@app.get("/admin/holds")
def holds() -> list[dict[str, object]]:
    return admin.held_syncs(services, signed_in_tenant())


@app.get("/admin/holds/decided")
def decided_holds() -> list[dict[str, object]]:
    return admin.hold_decisions(services, signed_in_tenant())


@app.post("/admin/holds/<course_id>/<decision>")
def decide(course_id: str, decision: str) -> dict[str, object]:
    course = parse_canvas_id(course_id)
    if decision not in {"approve", "reject"} or course is None:
        raise NotFoundError()
    return admin.decide_hold(
        services, signed_in_tenant(), course, approve=decision == "approve", decided_by=signed_in_admin()
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    grade_push_idempotency.register_lambda_context(context)  # a push cut off by the timeout can be resent
    return app.resolve(event, context)
