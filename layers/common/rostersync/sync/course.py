"""Syncing one course: read it whole from Canvas, then write only what changed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from rostersync.canvas.client import CanvasClient, Params
from rostersync.canvas.errors import CanvasError
from rostersync.canvas.models import CanvasEnrollment, CanvasSection, CanvasUser
from rostersync.canvas.scopes import (
    LIST_COURSE_ENROLLMENTS,
    LIST_COURSE_SECTIONS,
    LIST_COURSE_USERS,
    Endpoint,
)
from rostersync.connection import canvas_client_for, canvas_slot, shared_canvas_limit
from rostersync.delivery.changes import roster_changes
from rostersync.errors import RetryLaterError
from rostersync.models import (
    ChangeCounts,
    CourseOutcome,
    CourseResult,
    CourseSyncMessage,
    HeldItem,
    HeldSync,
    HoldStatus,
    RunStatus,
    SyncError,
    SyncErrorCode,
    Tenant,
    TenantStatus,
    utc_now,
)
from rostersync.services import Services
from rostersync.store.rosters import CourseRow, CourseWriteConflictError, StoredItem, roster_digest
from rostersync.sync.roster import (
    SYNCED_ENROLLMENT_STATES,
    CourseRoster,
    MassDrop,
    build_course_roster,
    course_item,
    diff_roster,
    excluded_keys,
    held_drops,
    roster_items,
    split_mass_drop,
)

logger = Logger(child=True)
ModelT = TypeVar("ModelT", bound=BaseModel)


class ListReader(Protocol):
    """What reading a course needs from Canvas: each page of a list as it arrives (a CanvasClient, or the
    self-test's probe, which reads a sample course exactly as a sync does). Called from several threads."""

    def pages(
        self, endpoint: Endpoint, params: Params | None = None, **path: int | str
    ) -> Iterator[list[Any]]: ...


def course_lists(tenant: Tenant) -> int:
    """How many lists a course's sync reads from Canvas (at once): sections, enrollments, and the users
    when the tenant needs their emails."""
    return 3 if tenant.settings.needs_emails else 2


def _read_list(
    client: ListReader, model: type[ModelT], endpoint: Endpoint, params: Params, course_id: int
) -> list[ModelT]:
    # Each page is validated as it arrives and its raw JSON dropped: a big course never holds both whole.
    pages = client.pages(endpoint, params, course_id=course_id)
    return [model.model_validate(item) for page in pages for item in page]


def fetch_course_roster(
    client: ListReader, tenant: Tenant, message: CourseSyncMessage, *, parallel: int = 1
) -> CourseRoster:
    """Every page of every list, or an exception: a partial fetch is never returned. The lists are
    independent, so up to `parallel` of them are read at once."""
    course_id = message.course.id
    enrollment_states = [("state[]", state) for state in SYNCED_ENROLLMENT_STATES]
    user_params = [
        ("include[]", "email"),
        *(("enrollment_state[]", state) for state in SYNCED_ENROLLMENT_STATES),
    ]
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, course_lists(tenant)))) as pool:
        sections = pool.submit(_read_list, client, CanvasSection, LIST_COURSE_SECTIONS, [], course_id)
        enrollments = pool.submit(
            _read_list, client, CanvasEnrollment, LIST_COURSE_ENROLLMENTS, enrollment_states, course_id
        )
        users = (
            pool.submit(_read_list, client, CanvasUser, LIST_COURSE_USERS, user_params, course_id)
            if tenant.settings.needs_emails
            else None
        )
        try:
            read = (sections.result(), enrollments.result(), users.result() if users is not None else [])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # a list not started yet is not read for nothing
            raise
    return build_course_roster(message.course, *read, tenant.settings)


@dataclass(frozen=True)
class CourseRead:
    """A course's roster as read from Canvas, or the Canvas error that stopped the read."""

    client: CanvasClient
    roster_or_error: CourseRoster | CanvasError


def read_course(services: Services, tenant: Tenant, message: CourseSyncMessage) -> CourseRead:
    """Read the course from Canvas under one of the tenant's Canvas slots. A Canvas error is returned
    with the client that met it (its request counts go in the course's result); others are raised."""
    client = canvas_client_for(services, tenant)
    lists = course_lists(tenant)
    try:
        # One slot stands for the course's lists read at once (fewer when the tenant's limit is lower).
        with canvas_slot(services, tenant.tenant_id, requests=lists):
            parallel = min(lists, shared_canvas_limit(services, tenant.tenant_id).current())
            return CourseRead(client, fetch_course_roster(client, tenant, message, parallel=parallel))
    except CanvasError as error:
        return CourseRead(client, error)


class CourseBatch:
    """The courses one worker invocation syncs. Their tenants, own rows and holds are read together up
    front, and their results and sync errors written together at the end, where each run's completion is
    checked once: a course's sync costs DynamoDB a few requests, whatever the batch holds.

    A row read up front may be older than the course when its turn comes; the write stays safe, as it is
    conditional on the generation the row showed (a newer commit is a write conflict, retried later)."""

    def __init__(self, services: Services, messages: Sequence[CourseSyncMessage]) -> None:
        self._services = services
        self._view = services.table.read_courses((m.tenant_id, m.course.id) for m in messages)
        # Each course's rows serve it once: a course met again in the batch is read again.
        self._unused = {(m.tenant_id, m.course.id) for m in messages}
        self._results: list[CourseResult] = []
        self._errors: list[SyncError] = []
        # The batch's courses are read from Canvas at once (each under its tenant's slot) while they are
        # written one after another: a course's Canvas read overlaps the others' DynamoDB writes.
        self._readers = ThreadPoolExecutor(max(1, len(messages)), thread_name_prefix="canvas-read")
        self._reads: dict[tuple[str, int], Future[CourseRead]] = {}
        for message in messages:
            key = (message.tenant_id, message.course.id)
            tenant = self._view.tenants.get(message.tenant_id)
            if key not in self._reads and tenant is not None and tenant.status is TenantStatus.ACTIVE:
                self._reads[key] = self._readers.submit(read_course, services, tenant, message)

    def sync(self, message: CourseSyncMessage, attempt: int) -> CourseResult:
        """Sync one course of a run and keep its result. Raises RetryLaterError when another attempt
        may help."""
        result = CourseResult(
            tenant_id=message.tenant_id,
            run_id=message.run_id,
            course_id=message.course.id,
            outcome=CourseOutcome.FAILED,
            attempt=attempt,
        )
        tenant, row, hold = self._starting_point(message)
        if tenant is None or tenant.status is not TenantStatus.ACTIVE:
            code = "unknown_tenant" if tenant is None else tenant.status.value
            return self._keep(
                result.model_copy(update={"error_code": code, "error_message": "tenant not syncable"})
            )
        read = self._read(tenant, message)
        client, roster = read.client, read.roster_or_error
        if isinstance(roster, CanvasError):
            error = roster
            # Revoked grants, missing scopes and refusals are final; outages get the queue's retries.
            final = not error.retryable or attempt >= self._services.settings.course_sync_max_receive_count
            if not error.retryable:  # the tenant's status may have changed: read it again for the next course
                self._unused = {key for key in self._unused if key[0] != tenant.tenant_id}
            return self._fail(result, client, error, error.code, final)
        try:
            counts, held, errors = apply_roster(self._services, tenant, message, roster, row=row, hold=hold)
        except CourseWriteConflictError as error:
            # Another worker wrote the course meanwhile (a redelivery, a live event): read Canvas again later.
            final = attempt >= self._services.settings.course_sync_max_receive_count
            return self._fail(result, client, error, "write_conflict", final)
        self._errors += errors
        done = result.model_copy(
            update={
                "outcome": CourseOutcome.HELD if held else CourseOutcome.SUCCEEDED,
                "changes": counts,
                **_client_counts(client),
            }
        )
        return self._keep(done)

    def finish(self) -> None:
        """Write the batch's sync errors, then its results (clearing the final ones' pending markers),
        then close each run whose last pending course this batch cleared."""
        # Reads no course took (its tenant stopped being syncable meanwhile) end before the batch does.
        self._readers.shutdown(wait=True, cancel_futures=True)
        self._services.table.put_sync_errors(self._errors)
        self._services.table.record_course_results(self._results)
        for tenant_id, run_id in dict.fromkeys((r.tenant_id, r.run_id) for r in self._results if r.is_final):
            _complete_run_when_done(self._services, tenant_id, run_id)
        self._results, self._errors = [], []

    def _read(self, tenant: Tenant, message: CourseSyncMessage) -> CourseRead:
        """The course's Canvas read started with the batch, or one made now (for a course met again)."""
        started = self._reads.pop((message.tenant_id, message.course.id), None)
        return started.result() if started is not None else read_course(self._services, tenant, message)

    def _starting_point(
        self, message: CourseSyncMessage
    ) -> tuple[Tenant | None, CourseRow | None, HeldSync | None]:
        key = (message.tenant_id, message.course.id)
        view = self._view
        if key in self._unused:
            self._unused.discard(key)
        else:
            view = self._services.table.read_courses([key])
        return view.tenants.get(key[0]), view.rows.get(key), view.holds.get(key)

    def _keep(self, result: CourseResult) -> CourseResult:
        self._results.append(result)
        return result

    def _fail(
        self, result: CourseResult, client: CanvasClient, error: Exception, code: str, final: bool
    ) -> CourseResult:
        """Keep a failed attempt's result (FAILED when it was the last, RETRYING otherwise); raise
        RetryLaterError for the queue to deliver the course again when it was not the last."""
        failed = self._keep(
            result.model_copy(
                update={
                    "outcome": CourseOutcome.FAILED if final else CourseOutcome.RETRYING,
                    "error_code": code,
                    "error_message": str(error),
                    **_client_counts(client),
                }
            )
        )
        logger.warning(
            "course sync failed", extra={"course_id": result.course_id, "code": code, "final": final}
        )
        if not final:
            raise RetryLaterError(str(error)) from error
        return failed


@contextmanager
def course_batch(services: Services, messages: Sequence[CourseSyncMessage]) -> Iterator[CourseBatch]:
    """A batch of courses to sync; what it synced is recorded on leaving, even when a course raised."""
    batch = CourseBatch(services, messages)
    try:
        yield batch
    finally:
        batch.finish()


def sync_course(services: Services, message: CourseSyncMessage, attempt: int) -> CourseResult:
    """Sync one course of a run alone and record its result. Raises RetryLaterError when another attempt
    may help."""
    with course_batch(services, [message]) as batch:
        return batch.sync(message, attempt)


def apply_roster(
    services: Services,
    tenant: Tenant,
    message: CourseSyncMessage,
    roster: CourseRoster,
    *,
    row: CourseRow | None,
    hold: HeldSync | None,
) -> tuple[ChangeCounts, bool, list[SyncError]]:
    """Write what changed (a mass drop held back) against the course's row and hold as read before;
    return the change counts, whether something is held, and the sync errors found.

    A course marked out of scope is left as it is, unless a planner listed it after marking it."""
    tenant_id, course_id = message.tenant_id, message.course.id
    desired = roster_items(roster)
    mark = row.out_of_scope if row is not None else None
    planned_at = message.planned_at
    if mark is not None and (planned_at is None or planned_at <= mark.at):
        logger.info(
            "course out of scope left as it is",
            extra={"course_id": course_id, "reason": mark.reason, "run_id": message.run_id},
        )
        return ChangeCounts(), False, []
    # Read the stored roster item by item only when it can differ from Canvas's.
    if row is None:  # never claimed by a writer, so no item of its roster exists
        stored, generation = {}, 0
    elif row.roster_digest == roster_digest(desired.values()):
        stored, generation = desired, row.generation
    else:
        stored, generation = services.table.course_snapshot(tenant_id, course_id)
    changes, mass_drop = split_mass_drop(
        diff_roster(stored, desired, datetime.now(UTC), excluded_keys(roster)), tenant.settings
    )
    new_course = course_item(roster.course)
    course_changed = row is None or row.course is None or row.course.content_hash != new_course.content_hash
    services.table.write_course(
        tenant_id,
        course_id,
        new_course if course_changed else None,
        changes.puts,
        changes.deletes,
        expected_generation=generation,
        expected_items=stored,
        describe_changes=roster_changes,
    )
    if (
        mark is not None
        and planned_at is not None
        and not services.table.bring_into_scope(tenant_id, course_id, planned_at)
    ):
        # A newer run marked it out of scope meanwhile: what was written stays out of the export.
        return changes.counts, False, []

    def course_error(code: SyncErrorCode, text: str, user_id: int | None = None) -> SyncError:
        return SyncError(
            tenant_id=tenant_id, run_id=message.run_id, course_id=course_id, user_id=user_id, code=code.value,
            message=text,
        )  # fmt: skip

    errors = [course_error(problem.code, problem.message, problem.user_id) for problem in roster.problems]
    held, rejected = _hold(services, tenant, message, mass_drop, stored, existing=hold)
    if rejected is not None:
        errors.append(
            course_error(
                SyncErrorCode.DROPS_REJECTED,
                f"{rejected.student_drops} enrollments that left Canvas are kept active: "
                f"{rejected.decided_by} rejected the drops at {rejected.decided_at:%Y-%m-%d %H:%M} UTC",
            )
        )
    if held and mass_drop is not None:
        errors.append(
            course_error(
                SyncErrorCode.HELD_FOR_APPROVAL,
                f"{mass_drop.student_drops} of {mass_drop.active_before} active enrollments would drop; "
                "approve or reject the held sync",
            )
        )
    return changes.counts, held, errors


def _hold(
    services: Services,
    tenant: Tenant,
    message: CourseSyncMessage,
    mass_drop: MassDrop | None,
    stored: Mapping[str, StoredItem],
    *,
    existing: HeldSync | None,
) -> tuple[bool, HeldSync | None]:
    """Keep a pending hold for these drops, given the course's `existing` hold: (held, the rejected hold
    when an admin already rejected exactly these drops)."""
    tenant_id, course_id = message.tenant_id, message.course.id
    if mass_drop is None:
        if existing is not None:  # Canvas moved on: the held drops no longer stand
            if existing.status is HoldStatus.PENDING:
                withdrawn = existing.model_copy(
                    update={"status": HoldStatus.WITHDRAWN, "decided_by": "Canvas", "decided_at": utc_now()}
                )
                services.table.put_hold_decision(withdrawn)
            services.table.delete_hold(tenant_id, course_id)
        return False, None
    if (
        existing is not None
        and existing.status is HoldStatus.REJECTED
        and existing.fingerprint == mass_drop.fingerprint
    ):
        return False, existing
    services.table.put_hold(
        HeldSync(
            tenant_id=tenant_id,
            course_id=course_id,
            run_id=message.run_id,
            fingerprint=mass_drop.fingerprint,
            student_drops=mass_drop.student_drops,
            active_before=mass_drop.active_before,
            puts=[
                HeldItem(sk=item.sk, data=item.data, content_hash=item.content_hash)
                for item in mass_drop.held_puts
            ],
            deletes=mass_drop.held_deletes,
            drops=held_drops(mass_drop.held_puts, stored, tenant.settings.user_id_field),
        )
    )
    return True, None


def _client_counts(client: CanvasClient) -> dict[str, int]:
    return {
        "canvas_requests": client.stats.requests,
        "canvas_throttled": client.stats.throttled,
        "canvas_retries": client.stats.retries,
    }


def _complete_run_when_done(services: Services, tenant_id: str, run_id: str) -> None:
    # Checked after this batch's markers were cleared, so the worker that clears the last course sees
    # none pending.
    if services.table.has_pending_courses(tenant_id, run_id):
        return
    run = services.table.get_run(tenant_id, run_id)
    if run is not None and run.status is RunStatus.RUNNING:
        services.table.finish_run(tenant_id, run_id, RunStatus.COMPLETED, datetime.now(UTC))
