"""A batch's Canvas assignment: mapped, found by its marker, or created published, one creation at a time
(claimed first, so two batches for the same new assignment create one Canvas assignment).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from aws_lambda_powertools import Logger

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import CanvasNotFoundError, CanvasUnavailableError, CanvasWriteUncertainError
from rostersync.canvas.scopes import CREATE_ASSIGNMENT, LIST_ASSIGNMENTS
from rostersync.errors import RetryLaterError
from rostersync.grades.submission import Params
from rostersync.models import GradeBatchRecord
from rostersync.store.grades import GradeStore

logger = Logger(child=True)

# Times the assignment is looked up and POSTed while Canvas leaves the outcome of the POST unknown.
CREATE_ATTEMPTS = 3
# How long a claim to create an assignment holds before another worker may take it over (its worker died).
CLAIM_STALE_AFTER = timedelta(minutes=5)
CLAIM_POLL_SECONDS = 0.5
CLAIM_POLLS = 40  # a worker waits this many polls for another worker's creation, then retries later


def assignment_marker(external_id: str) -> str:
    """The integration_id our assignments carry in Canvas, so that one can be found again without the map."""
    return f"rostersync:{external_id}"


def _assignment_exists(client: CanvasClient, course_id: int, assignment_id: int) -> bool:
    try:
        found = client.get_all(
            LIST_ASSIGNMENTS, [("assignment_ids[]", str(assignment_id))], course_id=course_id
        )
    except CanvasNotFoundError:
        return False
    return any(isinstance(item, dict) and item.get("id") == assignment_id for item in found)


def _marked_assignment(client: CanvasClient, record: GradeBatchRecord) -> int | None:
    """Our assignment as Canvas lists it (by its integration_id), e.g. created by a worker that then died."""
    marker = assignment_marker(record.assignment.external_id)
    ids = [
        int(item["id"])
        for item in client.get_all(LIST_ASSIGNMENTS, course_id=record.course_id)
        if isinstance(item, dict) and item.get("integration_id") == marker
    ]
    return min(ids) if ids else None


def _find_or_create(client: CanvasClient, record: GradeBatchRecord) -> int:
    """Our assignment in Canvas: found by its marker, or created published. A POST whose outcome is
    unknown (5xx, timeout) is never repeated blind: the marker lookup runs again first."""
    assignment = record.assignment
    params: Params = [
        ("assignment[name]", assignment.name),
        ("assignment[grading_type]", assignment.grading_type),
        ("assignment[published]", "true"),
        ("assignment[submission_types][]", "none"),
        ("assignment[integration_id]", assignment_marker(assignment.external_id)),
    ]
    if assignment.points_possible is not None:
        params.append(("assignment[points_possible]", f"{assignment.points_possible:g}"))
    for _ in range(CREATE_ATTEMPTS):
        found = _marked_assignment(client, record)
        if found is not None:
            return found
        try:
            return int(client.write(CREATE_ASSIGNMENT, params, course_id=record.course_id)["id"])
        except CanvasWriteUncertainError as error:
            logger.warning("assignment creation outcome unknown; looking it up", extra={"error": str(error)})
    raise CanvasUnavailableError(
        f"creating assignment {assignment.external_id!r} failed {CREATE_ATTEMPTS} times"
    )


def ensure_assignment(
    client: CanvasClient,
    store: GradeStore,
    record: GradeBatchRecord,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, str | None]:
    """The batch's Canvas assignment (mapped, found or created published); a note when it was recreated.

    Creation is claimed first with a conditional write, so two batches for the same new assignment create
    one Canvas assignment: the other waits for the winner's mapping and uses it.
    """
    tenant_id, course_id, external_id = record.tenant_id, record.course_id, record.assignment.external_id
    gone: int | None = None  # a mapped id that Canvas no longer has
    for _ in range(CLAIM_POLLS):
        mapping = store.assignment_mapping(tenant_id, course_id, external_id)
        mapped = mapping.canvas_assignment_id if mapping else None
        if mapped is not None and mapped != gone:
            if _assignment_exists(client, course_id, mapped):
                return mapped, _recreated_note(external_id, gone, mapped)
            gone = mapped
        owner = uuid.uuid4().hex
        if store.claim_assignment(
            tenant_id, course_id, external_id, owner, replacing=gone, stale_after=CLAIM_STALE_AFTER
        ):
            try:
                canvas_id = _find_or_create(client, record)
            except BaseException:
                store.release_assignment_claim(tenant_id, course_id, external_id, owner)
                raise
            if store.remember_assignment(tenant_id, course_id, external_id, canvas_id, owner):
                return canvas_id, _recreated_note(external_id, gone, canvas_id)
            # Our claim went stale and was taken over; the new holder looks the marker up and adopts ours.
        sleep(CLAIM_POLL_SECONDS)
    raise RetryLaterError(f"assignment {external_id!r} is still being created by another worker")


def _recreated_note(external_id: str, gone: int | None, canvas_id: int) -> str | None:
    if gone is None:
        return None
    return (
        f"assignment {external_id!r} (Canvas id {gone}) is no longer in Canvas; "
        f"created it again as Canvas id {canvas_id}"
    )
