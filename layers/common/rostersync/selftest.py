"""The connection self-test an admin runs after authorizing: is everything a sync needs readable?

Every read the sync and grade passback make is probed once, read-only. Writes (creating an assignment,
grading a submission) are not probed, because a probe would change Canvas; they are named as such.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import CanvasError, InsufficientScopeError
from rostersync.canvas.models import CanvasCourse, CanvasUser
from rostersync.canvas.scopes import (
    GET_ACCOUNT,
    GET_ACCOUNT_COURSE,
    GET_HELP_LINKS,
    GET_SUBMISSION,
    LIST_ACCOUNT_COURSES,
    LIST_ACCOUNT_ROLES,
    LIST_ADMIN_ACCOUNTS,
    LIST_ASSIGNMENTS,
    LIST_COURSE_ENROLLMENTS,
    LIST_COURSE_SECTIONS,
    LIST_COURSE_USERS,
    MANIFEST,
    Endpoint,
)
from rostersync.connection import canvas_client_for
from rostersync.models import TenantStatus
from rostersync.services import Services
from rostersync.tenants import TenantError, require_tenant


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a check result, not a password
    WARN = "warn"
    FAIL = "fail"


class SelfTestCheck(BaseModel):
    name: str
    status: CheckStatus
    detail: str


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

    def one(self, endpoint: Endpoint, **path: int | str) -> Any:
        return self._call(endpoint, lambda: self.client.get_one(endpoint, None, **path))

    def _call(self, endpoint: Endpoint, read: Callable[[], Any]) -> Any:
        try:
            answer = read()
        except CanvasError as error:
            self.outcomes[endpoint] = error
            raise
        self.outcomes.setdefault(endpoint, None)
        return answer


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
        _check("Sample course roster", lambda: _sample_course(probe, root)),
    ]
    checks.append(_scopes(probe))
    return SelfTestReport(tenant_id=tenant_id, checks=checks)


def _check(name: str, run: Callable[[], tuple[CheckStatus, str]]) -> SelfTestCheck:
    try:
        status, detail = run()
    except CanvasError as error:
        return SelfTestCheck(name=name, status=CheckStatus.FAIL, detail=f"{error.code}: {error}")
    return SelfTestCheck(name=name, status=status, detail=detail)


def _token(probe: _Probe, root: int) -> tuple[CheckStatus, str]:
    links = probe.one(GET_HELP_LINKS, account_id=root)  # one object: custom and default links
    count = len(links.get("custom_help_links", [])) + len(links.get("default_help_links", []))
    return CheckStatus.PASS, f"the access token works (read {count} help links)"


def _accounts(probe: _Probe, root: int) -> tuple[CheckStatus, str]:
    accounts = probe.first_page(LIST_ADMIN_ACCOUNTS, [("per_page", "100")])
    name = probe.one(GET_ACCOUNT, id=root).get("name", "?")
    return CheckStatus.PASS, f"root account {root} ({name}); the authorizing user administers {len(accounts)}"


def _roles(probe: _Probe, root: int) -> tuple[CheckStatus, str]:
    roles = probe.first_page(LIST_ACCOUNT_ROLES, [("per_page", "100")], account_id=root)
    names = ", ".join(sorted(str(role.get("label") or role.get("role")) for role in roles))
    return CheckStatus.PASS, f"{len(roles)} roles: {names}"


def _sample_course(probe: _Probe, root: int) -> tuple[CheckStatus, str]:
    courses = probe.first_page(
        LIST_ACCOUNT_COURSES,
        [("with_enrollments", "true"), ("published", "true"), ("per_page", "10")],
        account_id=root,
    )
    if not courses:
        return CheckStatus.WARN, "the root account has no published course with enrollments to sample"
    course = CanvasCourse.model_validate(probe.one(GET_ACCOUNT_COURSE, account_id=root, id=courses[0]["id"]))
    probe.first_page(LIST_COURSE_SECTIONS, [("per_page", "100")], course_id=course.id)
    probe.first_page(LIST_COURSE_ENROLLMENTS, [("per_page", "10")], course_id=course.id)
    students = [
        CanvasUser.model_validate(user)
        for user in probe.first_page(
            LIST_COURSE_USERS,
            [("enrollment_type[]", "student"), ("include[]", "email"), ("per_page", "20")],
            course_id=course.id,
        )
    ]
    assignments = probe.first_page(LIST_ASSIGNMENTS, [("per_page", "1")], course_id=course.id)
    if assignments and students:
        probe.one(
            GET_SUBMISSION, course_id=course.id, assignment_id=assignments[0]["id"], user_id=students[0].id
        )
    where = f"course {course.id} ({course.name})"
    if not students:
        return CheckStatus.WARN, f"{where} has no students to sample"
    hidden = [
        f"{label} hidden for {missing} of {len(students)} students"
        for label, missing in (
            ("SIS user ids", sum(student.sis_user_id is None for student in students)),
            ("emails", sum(student.email is None for student in students)),
        )
        if missing
    ]
    if hidden:
        return CheckStatus.WARN, (
            f"{where}: {'; '.join(hidden)} (the authorizing user may lack the permission to see them; "
            "users without the identifier the tenant syncs by become sync errors)"
        )
    return CheckStatus.PASS, f"{where}: {len(students)} students sampled, all with SIS user ids and emails"


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
