"""CloudWatch metrics per tenant (Powertools EMF), for dashboards and the template's alarms."""

from __future__ import annotations

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from rostersync.models import CourseOutcome, CourseResult

OUTCOME_METRICS = {
    CourseOutcome.SUCCEEDED: "CoursesSynced",
    CourseOutcome.HELD: "CoursesHeld",
    CourseOutcome.FAILED: "CourseSyncFailed",
    CourseOutcome.RETRYING: "CourseSyncRetried",
}


def publish_course_metrics(result: CourseResult) -> None:
    # Two views of one course: per tenant (dashboards) and per service (the template's failure alarm).
    for dimension in ({"tenant": result.tenant_id}, {"service": "rostersync"}):
        metrics = EphemeralMetrics()
        for name, value in dimension.items():
            metrics.add_dimension(name=name, value=value)
        metrics.add_metric(name=OUTCOME_METRICS[result.outcome], unit=MetricUnit.Count, value=1)
        changes = result.changes
        metrics.add_metric(
            name="RosterChanges",
            unit=MetricUnit.Count,
            value=changes.created + changes.updated + changes.dropped,
        )
        metrics.add_metric(name="CanvasThrottled", unit=MetricUnit.Count, value=result.canvas_throttled)
        metrics.add_metric(name="CanvasRequests", unit=MetricUnit.Count, value=result.canvas_requests)
        metrics.flush_metrics()
