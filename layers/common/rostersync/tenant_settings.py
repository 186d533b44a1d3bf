"""A tenant's sync settings and course selection: validated against its Canvas, widening confirmed."""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import ValidationError

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import CanvasNotFoundError, CanvasPermissionError
from rostersync.canvas.models import CanvasAccount, CanvasCourse, CanvasRole, CanvasTerm
from rostersync.canvas.scopes import (
    GET_ACCOUNT,
    LIST_ACCOUNT_COURSES,
    LIST_ACCOUNT_ROLES,
    LIST_ADMIN_ACCOUNTS,
)
from rostersync.connection import canvas_client_for
from rostersync.models import (
    DEFAULT_ROLE_MAP,
    MAX_SYNC_LIST_COURSES,
    CourseSelection,
    Tenant,
    TenantSettings,
    TenantStatus,
    parse_canvas_id,
)
from rostersync.services import Services
from rostersync.tenants import CanvasSettingsError, TenantError, require_tenant


class ConfirmationNeededError(TenantError):
    """The change widens what syncs, or replaces a list: honoured only when the caller confirms it."""


def configure_tenant(services: Services, tenant_id: str, changes: dict[str, object]) -> Tenant:
    """Replace the named top-level settings (validated together); return the tenant with its new settings.

    A new account or a newly mapped role name is checked against the tenant's Canvas first."""
    tenant = require_tenant(services, tenant_id)
    try:
        settings = TenantSettings.model_validate({**tenant.settings.model_dump(), **changes})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        raise TenantError(f"invalid settings: {problems}") from None
    account_id = settings.courses.account_id
    new_account = account_id if account_id != tenant.settings.courses.account_id else None
    new_roles = sorted(set(settings.role_overrides) - set(tenant.settings.role_overrides))
    if new_account is not None or new_roles:
        client = connected_client(services, tenant)
        if new_account is not None:
            _check_account(client, tenant, new_account)
        if new_roles:
            _check_role_names(client, tenant, account_id, new_roles)
    # A changed schedule runs on its own rule from now on (not at the next tick, as a tenant never synced).
    schedule_changed = settings.schedule != tenant.settings.schedule
    next_sync_at = settings.schedule.next_run(datetime.now(UTC)) if schedule_changed else None
    services.table.update_tenant_settings(tenant_id, settings, next_sync_at)
    update: dict[str, object] = {"settings": settings}
    if next_sync_at is not None:
        update["next_sync_at"] = next_sync_at
    return tenant.model_copy(update=update)


def connected_client(services: Services, tenant: Tenant) -> CanvasClient:
    """A Canvas client of a connected tenant, for reading its accounts and roles."""
    if tenant.status is not TenantStatus.ACTIVE or tenant.root_account_id is None:
        raise TenantError(
            "connect the tenant to Canvas first: accounts, roles and terms are read from its Canvas"
        )
    return canvas_client_for(services, tenant)


def _check_account(client: CanvasClient, tenant: Tenant, account_id: int) -> None:
    """The token must see the account, and it must be in the tenant's root account."""
    try:
        account = CanvasAccount.model_validate(client.get_one(GET_ACCOUNT, id=account_id))
    except (CanvasNotFoundError, CanvasPermissionError):
        raise CanvasSettingsError(
            "account_id",
            f"account {account_id} is not in this Canvas, or the user who authorized rostersync cannot "
            "see it; give the number in the account's Canvas address (/accounts/N)",
        ) from None
    if tenant.root_account_id not in (account.id, account.root_account_id):
        raise CanvasSettingsError(
            "account_id",
            f"account {account_id} ({account.name}) is not under this tenant's root account "
            f"{tenant.root_account_id}",
        )


# Canvas's base enrollment types: a custom course role keeps its base type, the built-in roles are named
# by them (the test student's type included, though it never syncs).
BASE_ENROLLMENT_TYPES = frozenset({*DEFAULT_ROLE_MAP, "StudentViewEnrollment"})


def _check_role_names(client: CanvasClient, tenant: Tenant, account_id: int | None, names: list[str]) -> None:
    """Each name must be a base enrollment type or a course role of the synced account (its own roles,
    those it inherits, inactive ones too: their enrollments keep them). A role defined only in a
    sub-account below the synced account is not listed there, so it is refused as unknown."""
    account = account_id or tenant.root_account_id
    course_roles = {role.role: role for role in _course_roles(client, account)}
    known = BASE_ENROLLMENT_TYPES | set(course_roles)
    labels = {role.label: name for name, role in course_roles.items() if role.label}
    problems = []
    for name in names:
        if name in known:
            continue
        if name in labels:
            problems.append(f"{name!r} is the label of the Canvas role {labels[name]!r}: map the role's name")
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{name!r} is not a course role of account {account}{hint}")
    if problems:
        raise CanvasSettingsError(
            "role_overrides",
            "; ".join(problems) + f". Known roles: {', '.join(sorted(known))}",
        )


def _course_roles(client: CanvasClient, account_id: int | None) -> list[CanvasRole]:
    """The course roles an account's enrollments can have: its own and inherited, inactive ones too."""
    listed = client.get_all(
        LIST_ACCOUNT_ROLES,
        [("state[]", "active"), ("state[]", "inactive"), ("show_inherited", "true")],
        account_id=str(account_id),
    )
    roles = [CanvasRole.model_validate(item) for item in listed]
    return [role for role in roles if not role.is_account_role]


def canvas_accounts(services: Services, tenant_id: str) -> list[CanvasAccount]:
    """The accounts the user who authorized rostersync administers (what `account_id` may name)."""
    client = connected_client(services, require_tenant(services, tenant_id))
    return [CanvasAccount.model_validate(item) for item in client.get_all(LIST_ADMIN_ACCOUNTS)]


def canvas_course_roles(
    services: Services, tenant_id: str, account_id: int | None = None
) -> list[CanvasRole]:
    """The course roles of the account (default: the tenant's synced account, else its root)."""
    tenant = require_tenant(services, tenant_id)
    client = connected_client(services, tenant)
    return _course_roles(client, account_id or tenant.settings.courses.account_id or tenant.root_account_id)


@dataclass(frozen=True)
class SeenTerm:
    term: CanvasTerm
    courses: int


def canvas_terms_seen(services: Services, tenant_id: str, account_id: int | None = None) -> list[SeenTerm]:
    """The terms of the account's courses, with how many courses each has. Canvas's terms endpoint is not
    among the developer key's scopes, so the terms are read off the course listing (include[]=term): a
    term without a course is not seen."""
    tenant = require_tenant(services, tenant_id)
    client = connected_client(services, tenant)
    account = account_id or tenant.settings.courses.account_id or tenant.root_account_id
    courses = [
        CanvasCourse.model_validate(item)
        for item in client.get_all(LIST_ACCOUNT_COURSES, [("include[]", "term")], account_id=str(account))
    ]
    terms: dict[int, CanvasTerm] = {}
    counts: Counter[int] = Counter()
    for course in courses:
        if course.term is not None:
            terms.setdefault(course.term.id, course.term)
            counts[course.term.id] += 1
    return [SeenTerm(terms[term_id], counts[term_id]) for term_id in sorted(terms)]


class SyncListMode(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"


SIS_COURSE_REFERENCE = re.compile(r"sis_course_id:\S.{0,64}")


def parse_course_list_csv(text: str) -> list[str]:
    """Course references from a CSV's first column: Canvas ids or sis_course_id:<id>; a header is skipped."""
    references: list[str] = []
    problems: list[str] = []
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:  # a field longer than the csv module takes (131072 characters)
        raise TenantError(f"the CSV is malformed or a field is too long: {error}") from error
    for number, row in enumerate(rows, start=1):
        value = row[0].strip() if row else ""
        if not value or (number == 1 and value.lower() in {"course_id", "canvas_course_id", "course"}):
            continue
        if parse_canvas_id(value) is not None or SIS_COURSE_REFERENCE.fullmatch(value):
            references.append(value)
        else:
            problems.append(f"line {number}: {value[:40]!r}")
    if problems:
        raise TenantError("not a Canvas course id or sis_course_id:<id>: " + "; ".join(problems[:10]))
    if len(references) > MAX_SYNC_LIST_COURSES:
        raise TenantError(
            f"the list has {len(references)} courses; a sync list holds at most {MAX_SYNC_LIST_COURSES}"
            " (sync an account or terms instead)"
        )
    return references


def update_sync_list(
    services: Services, tenant_id: str, mode: SyncListMode, references: list[str], *, confirmed: bool = False
) -> Tenant:
    """Add to, remove from or replace the tenant's course sync list. Replacing a list, or removing its
    last courses (which means every published course of the account), needs a confirmation."""
    tenant = require_tenant(services, tenant_id)
    current = list(tenant.settings.courses.sync_list)
    if mode is SyncListMode.ADD:
        updated = current + [ref for ref in dict.fromkeys(references) if ref not in current]
    elif mode is SyncListMode.REMOVE:
        updated = [ref for ref in current if ref not in set(references)]
    else:
        updated = list(dict.fromkeys(references))
    if not confirmed and current and not updated:
        raise ConfirmationNeededError(
            f"this empties the sync list, so every published course of the account would sync instead of "
            f"{len(current)}; confirm to proceed"
        )
    if not confirmed and mode is SyncListMode.REPLACE and current:
        raise ConfirmationNeededError(
            f"replace would swap the {len(current)} listed courses for {len(updated)}; confirm to proceed"
        )
    courses = tenant.settings.courses.model_copy(update={"sync_list": tuple(updated)})
    return configure_tenant(services, tenant_id, {"courses": courses.model_dump()})


def describe_selection(selection: CourseSelection) -> str:
    if selection.sync_list:
        return f"the {len(selection.sync_list)} courses of the sync list"
    account = "the root account" if selection.account_id is None else f"account {selection.account_id}"
    published = "published courses" if selection.published_only else "courses, unpublished too,"
    terms = f" in terms {', '.join(map(str, selection.term_ids))}" if selection.term_ids else ""
    return f"all {published} of {account}{terms}"


def widens(current: CourseSelection, new: CourseSelection) -> bool:
    """Whether `new` may sync a course `current` does not (another account is not known to be narrower)."""
    if current.sync_list or new.sync_list:
        return bool(current.sync_list) and (
            not new.sync_list or bool(set(new.sync_list) - set(current.sync_list))
        )
    return (
        (current.account_id is not None and new.account_id != current.account_id)
        or (current.published_only and not new.published_only)
        or (bool(current.term_ids) and (not new.term_ids or bool(set(new.term_ids) - set(current.term_ids))))
    )


def change_settings(
    services: Services, tenant_id: str, changes: dict[str, object], *, confirmed: bool = False
) -> Tenant:
    """Save settings from the page: a change that widens what syncs is honoured only when confirmed."""
    tenant = require_tenant(services, tenant_id)
    if "courses" in changes:
        current, new = tenant.settings.courses, CourseSelection.model_validate(changes["courses"])
        if widens(current, new) and not confirmed:
            raise ConfirmationNeededError(
                f"this syncs {describe_selection(new)} instead of {describe_selection(current)}; "
                "confirm to proceed"
            )
    return configure_tenant(services, tenant_id, changes)


def select_all_courses(
    services: Services, tenant_id: str, account_id: int | None, *, confirmed: bool = False
) -> Tenant:
    """Sync every published course of an account (the root when None) instead of the current selection."""
    selection = CourseSelection(account_id=account_id)
    return change_settings(services, tenant_id, {"courses": selection.model_dump()}, confirmed=confirmed)
