"""The connection self-test an admin runs after authorizing: is everything a sync needs readable?

Every read the sync and grade passback make is probed once, read-only. Writes (creating an assignment,
grading a submission) are not probed, because a probe would change Canvas; they are named as such.
One course of the tenant's own selection is read exactly as a sync reads it, so its per-user findings
are the sync errors a sync of that course would record; the selection's other courses are not read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from rostersync.canvas.client import CanvasClient, Params
from rostersync.canvas.errors import CanvasError, CanvasNotFoundError, InsufficientScopeError
from rostersync.canvas.models import CanvasCourse
from rostersync.canvas.scopes import (
    GET_ACCOUNT,
    GET_ACCOUNT_COURSE,
    GET_HELP_LINKS,
    GET_SUBMISSION,
    LIST_ACCOUNT_COURSES,
    LIST_ACCOUNT_ROLES,
    LIST_ADMIN_ACCOUNTS,
    LIST_ASSIGNMENTS,
    LIST_COURSE_USERS,
    MANIFEST,
    Endpoint,
)
from rostersync.connection import canvas_client_for
from rostersync.models import CourseSyncMessage, RosterRole, Tenant, TenantStatus
from rostersync.services import Services
from rostersync.sync.course import fetch_course_roster
from rostersync.sync.planner import course_listing_params
from rostersync.sync.roster import SYNCED_ENROLLMENT_STATES
from rostersync.tenants import TenantError, require_tenant


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a check result, not a password
    WARN = "warn"
    FAIL = "fail"


class SelfTestCheck(BaseModel):
    name: str
    status: CheckStatus
    detail: str
    # The sample course's would-be sync errors by reason code (the sample check only).
    findings: dict[str, int] = Field(default_factory=dict)


class SelfTestReport(BaseModel):
    tenant_id: str
    checks: list[SelfTestCheck]

    @property
    def passed(self) -> bool:
        return all(check.status is not CheckStatus.FAIL for check in self.checks)


class _Probe:
    """Calls Canvas and remembers, per declared endpoint, whether the read worked."""

    def __init__(self, client: CanvasClient) -> None:
        self.client = client
        self.outcomes: dict[Endpoint, CanvasError | None] = {}

    def first_page(self, endpoint: Endpoint, params: list[tuple[str, str]], **path: int | str) -> list[Any]:
        page: list[Any] = self._call(endpoint, lambda: next(self.client.pages(endpoint, params, **path), []))
        return page

    def pages(
        self, endpoint: Endpoint, params: Params | None = None, **path: int | str
    ) -> Iterator[list[Any]]:
        try:
            yield from self.client.pages(endpoint, params, **path)
        except CanvasError as error:
            self.outcomes[endpoint] = error
            raise
        self.outcomes.setdefault(endpoint, None)

    def one(self, endpoint: Endpoint, params: Params | None = None, **path: int | str) -> Any:
        return self._call(endpoint, lambda: self.client.get_one(endpoint, params, **path))

    def _call(self, endpoint: Endpoint, read: Callable[[], Any]) -> Any:
        try:
            answer = read()
        except CanvasError as error:
            self.outcomes[endpoint] = error
            raise
        self.outcomes.setdefault(endpoint, None)
        return answer


Outcome = tuple[CheckStatus, str, dict[str, int]]


def run_self_test(services: Services, tenant_id: str) -> SelfTestReport:
    tenant = require_tenant(services, tenant_id)
    if tenant.status is not TenantStatus.ACTIVE or tenant.root_account_id is None:
        raise TenantError("connect the tenant first: save the Canvas settings, then Generate Key")
    probe = _Probe(canvas_client_for(services, tenant))
    root = tenant.root_account_id
    checks = [
        _check("Token works", lambda: _token(probe, root)),
        _check("Accounts readable", lambda: _accounts(probe, root)),
        _check("Roles readable", lambda: _roles(probe, root)),
        _check("Sample course roster", lambda: _sample_course(probe, tenant)),
    ]
    checks.append(_scopes(probe))
    return SelfTestReport(tenant_id=tenant_id, checks=checks)


def _check(name: str, run: Callable[[], Outcome]) -> SelfTestCheck:
    try:
        status, detail, findings = run()
    except CanvasError as error:
        return SelfTestCheck(name=name, status=CheckStatus.FAIL, detail=f"{error.code}: {error}")
    return SelfTestCheck(name=name, status=status, detail=detail, findings=findings)


def _token(probe: _Probe, root: int) -> Outcome:
    links = probe.one(GET_HELP_LINKS, account_id=root)  # one object: custom and default links
    count = len(links.get("custom_help_links", [])) + len(links.get("default_help_links", []))
    return CheckStatus.PASS, f"the access token works (read {count} help links)", {}


def _accounts(probe: _Probe, root: int) -> Outcome:
    accounts = probe.first_page(LIST_ADMIN_ACCOUNTS, [])
    name = probe.one(GET_ACCOUNT, id=root).get("name", "?")
    detail = f"root account {root} ({name}); the authorizing user administers {len(accounts)}"
    return CheckStatus.PASS, detail, {}


def _roles(probe: _Probe, root: int) -> Outcome:
    roles = probe.first_page(LIST_ACCOUNT_ROLES, [], account_id=root)
    names = ", ".join(sorted(str(role.get("label") or role.get("role")) for role in roles))
    return CheckStatus.PASS, f"{len(roles)} roles: {names}", {}


# Sync-list entries tried before the sample check gives up looking for one Canvas has.
SAMPLE_SYNC_LIST_ENTRIES = 10


def _sample_of_selection(probe: _Probe, tenant: Tenant) -> CanvasCourse | None:
    """A course the tenant's next full sync would read: from its sync list, else the first page of its
    account, term and state filters (courses with enrollments preferred)."""
    selection, now = tenant.settings.courses, datetime.now(UTC)
    root = tenant.root_account_id or "self"
    candidates: list[CanvasCourse] = []
    if selection.sync_list:
        for ref in selection.sync_list[:SAMPLE_SYNC_LIST_ENTRIES]:
            try:
                item = probe.one(GET_ACCOUNT_COURSE, [("include[]", "term")], account_id=root, id=ref)
            except CanvasNotFoundError:
                continue
            candidates.append(CanvasCourse.model_validate(item))
    else:
        query = [*course_listing_params(selection)[0], ("with_enrollments", "true")]
        page = probe.first_page(LIST_ACCOUNT_COURSES, query, account_id=selection.account_id or root)
        candidates = [CanvasCourse.model_validate(item) for item in page]
    return next((c for c in candidates if c.workflow_state != "deleted" and not c.concluded(now)), None)


def _sample_course(probe: _Probe, tenant: Tenant) -> Outcome:
    course = _sample_of_selection(probe, tenant)
    if course is None:
        return CheckStatus.WARN, "the tenant's course selection has no course to sample", {}
    message = CourseSyncMessage(tenant_id=tenant.tenant_id, run_id="self-test", course=course)
    roster = fetch_course_roster(probe, tenant, message)  # the very reads, pages and rules of a sync
    if not tenant.settings.needs_emails:  # the sync skips this list; its scope is still probed
        probe.first_page(LIST_COURSE_USERS, [], course_id=course.id)
    student = next((e.user_id for e in roster.enrollments if e.roster_role is RosterRole.STUDENT), None)
    assignments = probe.first_page(LIST_ASSIGNMENTS, [], course_id=course.id)
    if assignments and student is not None:
        probe.one(GET_SUBMISSION, course_id=course.id, assignment_id=assignments[0]["id"], user_id=student)
    field = tenant.settings.user_id_field.value
    users_from = (
        "users listed with their emails"
        if tenant.settings.needs_emails
        else "users as enrollments embed them"
    )
    read = (
        f"course {course.id} ({course.real_name}) read as a sync reads it: {len(roster.enrollments)} "
        f"enrollments in the states {', '.join(SYNCED_ENROLLMENT_STATES)} after the role mapping, "
        f"{len(roster.users)} {users_from}"
    )
    not_read = "the selection's other courses were not read"
    findings = dict(sorted(Counter(problem.code.value for problem in roster.problems).items()))
    if not roster.users:
        return CheckStatus.WARN, f"{read}; nobody to sample; {not_read}", findings
    if findings:
        counts = ", ".join(f"{count} {code}" for code, count in findings.items())
        return (
            CheckStatus.WARN,
            (
                f"{read}; {len(roster.problems)} of them would be sync errors ({counts}) and left out of "
                f"the export (a hidden {field} may mean the authorizing user lacks the permission to see "
                f"it); {not_read}"
            ),
            findings,
        )
    return CheckStatus.PASS, f"{read}; every one has a {field} of its own; {not_read}", findings


def _scopes(probe: _Probe) -> SelfTestCheck:
    missing = sorted(
        endpoint.scope
        for endpoint, error in probe.outcomes.items()
        if isinstance(error, InsufficientScopeError)
    )
    untested = [endpoint.scope for endpoint in MANIFEST if endpoint not in probe.outcomes]
    if missing:
        return SelfTestCheck(
            name="Scopes granted",
            status=CheckStatus.FAIL,
            detail="add these scopes to the developer key, then Generate Key again: " + ", ".join(missing),
        )
    detail = f"{len(probe.outcomes)} read scopes used without refusal"
    if untested:
        detail += "; not probed (a probe would write to Canvas or needs data): " + ", ".join(untested)
    return SelfTestCheck(name="Scopes granted", status=CheckStatus.PASS, detail=detail)
