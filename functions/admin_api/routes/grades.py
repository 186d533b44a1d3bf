"""Grades going back to Canvas: push a batch, follow it, verify it; read a live assessment's results."""

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from rostersync.canvas.errors import CanvasNotFoundError
from rostersync.grades.batches import batch_status, submit_batch
from rostersync.grades.live_results import live_assessment_results
from rostersync.grades.verify import verify_batch
from rostersync.models import GradeBatch, parse_canvas_id
from rostersync.services import shared_services
from rostersync.store.dynamo import plain_client
from rostersync.web import parsed_body, signed_in_tenant

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
services = shared_services()

# A push resent with its idempotency_key (say after a timeout) answers the first push's batch id for a day;
# the key with other grades is refused. Keyed per tenant; the batch id itself is always the server's.
grade_push_idempotency = IdempotencyConfig(
    event_key_jmespath="[tenant_id, idempotency_key]",
    payload_validation_jmespath="[course_id, assignment, grades]",
    expires_after_seconds=86400,
)
grade_push_records = DynamoDBPersistenceLayer(
    table_name=services.settings.table_name,
    key_attr="pk",
    sort_key_attr="sk",
    expiry_attr="expires_at",
    boto3_client=plain_client(),
)


@idempotent_function(  # type: ignore[untyped-decorator]
    data_keyword_argument="batch", config=grade_push_idempotency, persistence_store=grade_push_records
)
def submit_once(batch: GradeBatch) -> str:
    return submit_batch(services, batch.tenant_id, batch)


@router.post("/admin/grades")
def push_grades() -> Response[dict[str, str]]:
    event = router.current_event
    # The batch is the tenant's own whatever the body says: the tenant comes from the token only.
    batch = parsed_body(event, GradeBatch, tenant_id=signed_in_tenant(router))
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


@router.get("/admin/grades/<batch_id>")
def grade_batch(batch_id: str) -> dict[str, object]:
    return batch_status(services, signed_in_tenant(router), batch_id)


@router.get("/admin/grades/<batch_id>/verify")
def verify_grades(batch_id: str) -> dict[str, object]:
    """Read the batch's grades back from Canvas and compare them with what was sent."""
    verification = verify_batch(services, signed_in_tenant(router), batch_id)
    return {**verification.model_dump(mode="json"), "all_match": verification.all_match}


@router.get("/admin/courses/<course_id>/live-assessments/<assessment_id>/results")
def live_results(course_id: str, assessment_id: str) -> dict[str, object]:
    """A live assessment's pass/fail results, read from the token's tenant's Canvas (`?user_id=` filters)."""
    course, assessment = parse_canvas_id(course_id), parse_canvas_id(assessment_id)
    if course is None or assessment is None:
        raise NotFoundError()
    event = router.current_event
    user_text = event.get_query_string_value("user_id")
    user_id = parse_canvas_id(user_text) if user_text is not None else None
    if user_text is not None and user_id is None:
        raise BadRequestError("user_id must be a Canvas user id")
    try:
        results = live_assessment_results(services, signed_in_tenant(router), course, assessment, user_id)
    except CanvasNotFoundError as error:
        raise NotFoundError(f"no live assessment {assessment} in course {course}") from error
    return {
        "course_id": course,
        "assessment_id": assessment,
        "results": [result.model_dump(mode="json") for result in results],
    }
