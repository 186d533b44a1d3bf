"""Read-back of a live assessment's results: Canvas's outcome-based pass/fail assessments.

rostersync never creates live assessments (they are not assignments); the caller names one by its Canvas id,
and this reads what Canvas holds for it, every page, through the tenant's own Canvas connection.
"""

from __future__ import annotations

from rostersync.canvas.models import LiveAssessmentResult
from rostersync.canvas.scopes import LIST_LIVE_ASSESSMENT_RESULTS
from rostersync.connection import canvas_client_for, canvas_slot
from rostersync.grades.verify import VerifyNotPossibleError
from rostersync.models import TenantStatus
from rostersync.services import Services
from rostersync.tenants import require_tenant


def live_assessment_results(
    services: Services, tenant_id: str, course_id: int, assessment_id: int, user_id: int | None = None
) -> list[LiveAssessmentResult]:
    """Every result of the assessment (only `user_id`'s when given), as Canvas answers them.

    Raises UnknownTenantError or VerifyNotPossibleError (the tenant cannot reach Canvas now), and the
    client's CanvasError subclasses: CanvasNotFoundError for an unknown course or assessment.
    """
    tenant = require_tenant(services, tenant_id)
    if tenant.status is not TenantStatus.ACTIVE:
        raise VerifyNotPossibleError(f"tenant {tenant_id} is {tenant.status.value}")
    params = [("user_id", str(user_id))] if user_id is not None else []
    client = canvas_client_for(services, tenant)
    with canvas_slot(services, tenant_id):
        found = client.get_all(
            LIST_LIVE_ASSESSMENT_RESULTS, params, course_id=course_id, assessment_id=assessment_id
        )
    return [LiveAssessmentResult.model_validate(item) for item in found]
