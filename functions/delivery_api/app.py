"""The delivery API (/v1) for the assessment platform: courses, rosters, a user's enrollments and the
ordered change feed of the calling client's tenant. API Gateway's JWT authorizer has checked the token
and its `rosters/read` scope; the tenant comes from the client id in the token, never from the request.
"""

from typing import Annotated

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import UnauthorizedError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.delivery import reading
from rostersync.models import ChangePage, CoursePage, ExportedCourse, UserEnrollments
from rostersync.services import shared_services
from rostersync.tracing import traced
from rostersync.web import jwt_claims

logger = Logger()
app = APIGatewayHttpResolver(enable_validation=True)
services = shared_services()
OPENAPI_TITLE = "rostersync roster delivery"


def caller_tenant() -> str:
    claims = jwt_claims(app.current_event)
    try:
        return reading.client_tenant(services.table, str(claims.get("client_id") or ""))
    except reading.UnknownClientError as error:
        raise UnauthorizedError(str(error)) from error


@app.get("/v1/courses")
def courses(cursor: Annotated[str | None, Query()] = None) -> CoursePage:
    return reading.list_courses(services.table, caller_tenant(), cursor)


class NotModifiedError(Exception):
    """The client holds the current roster (its If-None-Match names the ETag): 304, no body."""

    def __init__(self, etag: str) -> None:
        super().__init__(etag)
        self.etag = etag


@app.get("/v1/courses/<canvas_id>/roster")
def roster(canvas_id: int) -> Response[ExportedCourse]:
    etag, course = reading.course_roster(
        services.table, caller_tenant(), canvas_id, app.current_event.headers.get("if-none-match")
    )
    if course is None:
        raise NotModifiedError(etag)  # answered outside the response model's validation
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=course, headers={"ETag": etag}
    )


@app.get("/v1/users/<canvas_id>/enrollments")
def enrollments(canvas_id: int) -> UserEnrollments:
    return reading.user_enrollments(services.table, caller_tenant(), canvas_id)


@app.get("/v1/changes")
def changes(
    after: Annotated[str | None, Query()] = None, limit: Annotated[int | None, Query()] = None
) -> ChangePage:
    return reading.changes_after(services.table, caller_tenant(), after, limit)


@app.get("/v1/openapi.json")
def openapi() -> Response[str]:
    document = app.get_openapi_json_schema(title=OPENAPI_TITLE, version="1", openapi_version="3.1.0")
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=document)


def _error(status: int, message: str, **extra: str) -> Response[dict[str, str]]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body={"error": message, **extra}
    )


@app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
def invalid_request(error: RequestValidationError) -> Response[dict[str, str]]:
    fields = ", ".join(".".join(str(part) for part in problem["loc"][1:]) for problem in error.errors())
    return _error(400, f"invalid request: {fields}")


@app.exception_handler(NotModifiedError)  # type: ignore[untyped-decorator]
def not_modified(error: NotModifiedError) -> Response[str]:
    return Response(status_code=304, headers={"ETag": error.etag})


@app.exception_handler(reading.CursorError)  # type: ignore[untyped-decorator]
def invalid_cursor(error: reading.CursorError) -> Response[dict[str, str]]:
    return _error(400, str(error))


@app.exception_handler(reading.UnknownCourseError)  # type: ignore[untyped-decorator]
def unknown_course(error: reading.UnknownCourseError) -> Response[dict[str, str]]:
    return _error(404, str(error))


@app.exception_handler(reading.FeedExpiredError)  # type: ignore[untyped-decorator]
def feed_expired(error: reading.FeedExpiredError) -> Response[dict[str, str]]:
    return _error(410, str(error), cursor=error.resync_cursor)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@traced
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    return app.resolve(event, context)
