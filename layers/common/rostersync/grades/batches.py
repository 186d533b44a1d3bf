"""Grade batches: submitting one (stored pending, queued), its status, queueing its failures again; and
the reason codes and texts of failed grades, shared with the sending.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rostersync.models import GradeBatch, GradeBatchRecord, GradeMessage, GradeState, GradeStatus
from rostersync.services import Services
from rostersync.store.grades import INVALID_GRADE, GradeQueue, GradeStore
from rostersync.tenants import require_tenant


def not_enrolled(identified_by: str) -> str:
    return f"no enrolled student with this {identified_by} (the tenant's user identifier field)"


NOT_ASSIGNED = "not enrolled or not assigned"
COMMENTS_HIDDEN = (
    "Canvas did not return the submission's comments (the developer key needs Allow Include Parameters), "
    "so the comment was not sent: it might already be there"
)


class Reason:
    """Reason codes of failed grades."""

    NOT_ENROLLED = "not_enrolled"
    NOT_ASSIGNED = "not_assigned"
    CANVAS_REFUSED = "canvas_refused"
    COMMENTS_HIDDEN = "comments_hidden"
    COURSE_UNPUBLISHED = "course_unpublished"
    COURSE_CONCLUDED = "course_concluded"
    # and store.grades.INVALID_GRADE: a grade that older code stored invalid (read as failed)


class UnknownBatchError(LookupError):
    pass


# -- submitting --------------------------------------------------------------------------------------
def new_batch_id() -> str:
    # Sorts by time to the microsecond: `grades list` shows the latest first, even for pushes a second apart.
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"


def submit_batch(
    services: Services,
    tenant_id: str,
    batch: GradeBatch,
    *,
    store: GradeStore | None = None,
    queue: GradeQueue | None = None,
) -> str:
    """Store the batch's grades as pending under a new batch id and queue it; returns the id."""
    require_tenant(services, tenant_id)
    batch_id = new_batch_id()
    record = GradeBatchRecord(
        tenant_id=tenant_id,
        batch_id=batch_id,
        course_id=batch.course_id,
        assignment=batch.assignment,
        size=len(batch.grades),
    )
    (store or services.grades).put_batch(record, batch.grades)
    (queue or services.grade_queue).send(GradeMessage(tenant_id=tenant_id, batch_id=batch_id))
    return batch_id


# Failures a resend cannot cure: the grade itself must change (push it again corrected).
NOT_RETRYABLE = frozenset({Reason.NOT_ENROLLED, INVALID_GRADE})


@dataclass(frozen=True)
class RetryOutcome:
    requeued: int
    left_failed: dict[str, int]  # failed grades not queued again, per reason code

    def as_dict(self, batch_id: str) -> dict[str, Any]:
        return {"batch_id": batch_id, "requeued": self.requeued, "left_failed": self.left_failed}


def retry_failed(
    services: Services,
    tenant_id: str,
    batch_id: str,
    *,
    store: GradeStore | None = None,
    queue: GradeQueue | None = None,
) -> RetryOutcome:
    """Queue the batch's failed grades again, those a resend may cure (a missing student does not)."""
    store = store or services.grades
    if store.get_batch(tenant_id, batch_id) is None:
        raise UnknownBatchError(batch_id)
    failed = [grade for grade in store.grades(tenant_id, batch_id) if grade.status.state is GradeState.FAILED]
    retried = [
        grade.status
        for grade in failed
        if grade.entry is not None and grade.status.reason_code not in NOT_RETRYABLE
    ]
    for status in retried:
        store.set_status(tenant_id, batch_id, with_state(status, GradeState.PENDING))
    if retried:
        (queue or services.grade_queue).send(
            GradeMessage(tenant_id=tenant_id, batch_id=batch_id, indexes=[status.index for status in retried])
        )
    left = Counter(grade.status.reason_code or "unknown" for grade in failed if grade.status not in retried)
    return RetryOutcome(len(retried), dict(sorted(left.items())))


def batch_status(
    services: Services, tenant_id: str, batch_id: str, *, store: GradeStore | None = None
) -> dict[str, Any]:
    """The batch, its notes, counts per state and every grade's state (JSON-ready)."""
    store = store or services.grades
    record = store.get_batch(tenant_id, batch_id)
    if record is None:
        raise UnknownBatchError(batch_id)
    statuses = [grade.status for grade in store.grades(tenant_id, batch_id)]
    counts = Counter(status.state.value for status in statuses)
    return {
        "batch_id": record.batch_id,
        "course_id": record.course_id,
        "assignment": record.assignment.model_dump(mode="json"),
        "canvas_assignment_id": record.canvas_assignment_id,
        "created_at": record.created_at.isoformat(),
        "notes": record.notes,
        "counts": {state.value: counts.get(state.value, 0) for state in GradeState},
        "grades": [
            status.model_dump(mode="json", exclude_none=True, exclude={"updated_at"}) for status in statuses
        ],
    }


# -- a grade's state ---------------------------------------------------------------------------------
def with_state(
    status: GradeStatus,
    state: GradeState,
    reason: str | None = None,
    user_id: int | None = None,
    *,
    code: str | None = None,
) -> GradeStatus:
    """The grade's status moved to `state`, with its reason (if any), stamped now."""
    return status.model_copy(
        update={
            "state": state,
            "reason": reason,
            "reason_code": code,
            "canvas_user_id": user_id if user_id is not None else status.canvas_user_id,
            "updated_at": datetime.now(UTC),
        }
    )
