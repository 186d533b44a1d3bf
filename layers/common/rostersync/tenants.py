"""Tenants: creation, and connecting them to Canvas through the OAuth web flow."""

from __future__ import annotations

import csv
import difflib
import hashlib
import hmac
import io
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import urlencode

from pydantic import ValidationError

from rostersync.canvas.client import CanvasClient
from rostersync.canvas.errors import CanvasError, CanvasNotFoundError, CanvasPermissionError
from rostersync.canvas.models import CanvasAccount, CanvasCourse, CanvasRole, CanvasTerm
from rostersync.canvas.oauth import authorize_url
from rostersync.canvas.scopes import (
    GET_ACCOUNT,
    LIST_ACCOUNT_COURSES,
    LIST_ACCOUNT_ROLES,
    LIST_ADMIN_ACCOUNTS,
)
from rostersync.canvas.tokens import FixedTokenSource
from rostersync.canvas.urls import normalize_canvas_url
from rostersync.connection import (
    canvas_client_for,
    canvas_key_of,
    insecure_canvas_allowed,
    oauth_client_for,
)
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
from rostersync.store.secrets import TenantCredentials


class TenantError(Exception):
    """A request about a tenant that cannot be honoured; the message is safe to show."""


class UnknownTenantError(TenantError):
    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"unknown tenant {tenant_id!r}")


class ConfirmationNeededError(TenantError):
    """The change widens what syncs, or replaces a list: honoured only when the caller confirms it."""


class AuthorizationFlowError(TenantError):
    """The OAuth flow failed; nothing stored was changed."""


def new_tenant_id() -> str:
    return "t" + secrets.token_hex(6)


def require_tenant(services: Services, tenant_id: str) -> Tenant:
    tenant = services.table.get_tenant(tenant_id)
    if tenant is None:
        raise UnknownTenantError(tenant_id)
    return tenant


class CanvasSettingsError(TenantError):
    """One Canvas setting is not acceptable; `field` names it so a form can show the message beside it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _checked_canvas_settings(
    services: Services, canvas_url: str, client_id: str, *, allow_insecure_canvas: bool
) -> tuple[str, str]:
    if parse_canvas_id(client_id.strip()) is None:
        raise CanvasSettingsError(
            "client_id", "the Client ID is the developer key's number, e.g. 10000000000042"
        )
    allow_insecure = allow_insecure_canvas and services.settings.allow_insecure_canvas_urls
    try:
        origin = normalize_canvas_url(canvas_url, allow_insecure=allow_insecure)
    except CanvasError as error:
        raise CanvasSettingsError("canvas_url", str(error)) from error
    return origin, client_id.strip()


def create_tenant(
    services: Services,
    *,
    name: str,
    canvas_url: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    allow_insecure_canvas: bool = False,
    settings: TenantSettings | None = None,
) -> Tenant:
    """A new tenant: with its Canvas settings, or with a name only for its admin to fill in."""
    if not name.strip():
        raise TenantError("a tenant needs a name")
    if allow_insecure_canvas and not services.settings.allow_insecure_canvas_urls:
        raise TenantError("this stack does not allow insecure (http or loopback) Canvas URLs")
    tenant = Tenant(
        tenant_id=new_tenant_id(),
        name=name.strip(),
        status=TenantStatus.NOT_CONFIGURED,
        allow_insecure_canvas=allow_insecure_canvas,
        settings=settings or TenantSettings(),
    )
    given = [value for value in (canvas_url, client_id, client_secret) if value]
    if given and len(given) < 3:
        raise TenantError("give the Canvas URL, Client ID and Client Secret together, or none of them")
    if canvas_url and client_id and client_secret:
        origin, key_id = _checked_canvas_settings(
            services, canvas_url, client_id, allow_insecure_canvas=allow_insecure_canvas
        )
        if not client_secret.strip():
            raise CanvasSettingsError("client_secret", "the Client Secret is empty")
        tenant = tenant.model_copy(
            update={"canvas_url": origin, "client_id": key_id, "status": TenantStatus.PENDING_AUTHORIZATION}
        )
        credentials = {"client_secret": client_secret.strip(), "canvas_origin": origin, "client_id": key_id}
        services.secrets.create(tenant.tenant_id, TenantCredentials.model_validate(credentials))
    services.table.create_tenant(tenant)
    return tenant


def save_canvas_settings(
    services: Services, tenant_id: str, *, canvas_url: str, client_id: str, client_secret: str | None
) -> Tenant:
    """Edit/Save: a blank secret keeps the stored one for the same Canvas and key; a new URL or key
    needs the secret again (a saved secret is never sent to another host) and a new authorization."""
    tenant = require_tenant(services, tenant_id)
    origin, key_id = _checked_canvas_settings(
        services, canvas_url, client_id, allow_insecure_canvas=tenant.allow_insecure_canvas
    )
    new_secret = (client_secret or "").strip()
    same_key = (origin, key_id) == (tenant.canvas_url, tenant.client_id)
    if not new_secret and tenant.canvas_url is None:
        raise CanvasSettingsError("client_secret", "enter the developer key's Client Secret")
    if not new_secret and not same_key:
        raise CanvasSettingsError(
            "client_secret",
            "a new Canvas URL or Client ID needs its Client Secret: the saved one is only sent to "
            f"{tenant.canvas_url}",
        )
    if new_secret:
        services.secrets.save_client_secret(
            tenant_id, new_secret, canvas_origin=origin, client_id=key_id, keep_tokens=same_key
        )
    if same_key:
        return tenant
    saved = tenant.model_copy(
        update={
            "canvas_url": origin,
            "client_id": key_id,
            "status": TenantStatus.PENDING_AUTHORIZATION,
            "status_reason": "Canvas settings saved; generate a key to authorize",
            "root_account_id": None,
            "root_account_uuid": None,
            "authorized_at": None,
            "authorized_by": None,
        }
    )
    services.table.update_tenant_status(saved)
    return saved


def disconnect_tenant(services: Services, tenant_id: str, by: str) -> Tenant:
    """End the tenant's grant in Canvas and forget its tokens; the Canvas settings and secret stay, so
    Generate Key connects it again."""
    tenant = require_tenant(services, tenant_id)
    canvas_key_of_or_refuse(tenant)
    credentials = services.secrets.read(tenant_id, fresh=True)
    outcome = "the grant was revoked in Canvas"
    if credentials.access_token is not None:
        try:
            oauth_client_for(services, tenant).revoke(credentials.access_token.get_secret_value())
        except CanvasError as error:
            outcome = (
                f"Canvas did not confirm the revocation ({error.code}): remove the token in Canvas "
                "(the authorizing user's Settings > Approved Integrations)"
            )
    forgotten = {
        "access_token": None,
        "refresh_token": None,
        "access_token_expires_at": None,
        "access_token_issued_at": None,
    }
    services.secrets.write(tenant_id, credentials.model_copy(update=forgotten))
    disconnected = tenant.model_copy(
        update={
            "status": TenantStatus.PENDING_AUTHORIZATION,
            "status_reason": f"disconnected by {by}; {outcome}",
            "authorized_at": None,
            "authorized_by": None,
        }
    )
    services.table.update_tenant_status(disconnected)
    return disconnected


def remove_tenant(services: Services, tenant_id: str) -> int:
    """Delete the tenant, all its stored data and its secret; return how many items were deleted."""
    tenant = require_tenant(services, tenant_id)
    if tenant.canvas_url is not None:
        services.secrets.delete(tenant_id)
    return services.table.delete_tenant(tenant_id)


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


def _split_state(combined: str | None) -> tuple[str, str]:
    tenant_id, _, state = (combined or "").partition(".")
    if not tenant_id or not state:
        raise AuthorizationFlowError(
            "the authorization link is missing its state; start again from rostersync"
        )
    return tenant_id, state


def _digest(browser_binding: str) -> str:
    return hashlib.sha256(browser_binding.encode()).hexdigest()


def begin_authorization(
    services: Services, tenant_id: str, api_url: str, started_by: str, *, browser_bound: bool = True
) -> str:
    """A start URL for one authorization by `started_by` (an admin's token subject, or an operator).

    Browser-bound (the settings page's Generate Key): the callback must bring back the cookie the start
    link set, so only the browser that began can finish. An operator's link (`tenant authorize`) is
    not: any client that follows its redirects completes it, once, within the state's lifetime."""
    tenant = require_tenant(services, tenant_id)
    canvas_key_of_or_refuse(tenant)
    state = secrets.token_urlsafe(32)
    services.table.put_oauth_state(
        tenant_id, state, services.settings.oauth_state_ttl_seconds, started_by, browser_bound=browser_bound
    )
    return f"{api_url.rstrip('/')}/oauth/start?" + urlencode({"state": f"{tenant_id}.{state}"})


@dataclass(frozen=True)
class AuthorizeRedirect:
    location: str  # Canvas's authorize page
    browser_binding: str  # a cookie value for the browser; the callback must bring it back


def canvas_authorize_redirect(
    services: Services, combined_state: str | None, redirect_uri: str
) -> AuthorizeRedirect:
    """Where the start URL sends the browser. The state is bound to this browser, so the link opens once."""
    tenant_id, state = _split_state(combined_state)
    browser_binding = secrets.token_urlsafe(32)
    if not services.table.open_oauth_state(tenant_id, state, redirect_uri, _digest(browser_binding)):
        raise AuthorizationFlowError(
            "this authorization link is unknown, expired or already opened; start again from rostersync"
        )
    canvas_url, client_id = canvas_key_of_or_refuse(require_tenant(services, tenant_id))
    location = authorize_url(
        canvas_url, client_id=client_id, redirect_uri=redirect_uri, state=f"{tenant_id}.{state}"
    )
    return AuthorizeRedirect(location, browser_binding)


def complete_authorization(
    services: Services,
    combined_state: str | None,
    code: str | None,
    error: str | None,
    browser_binding: str | None,
) -> Tenant:
    """Canvas redirected back: exchange the code, find the root account, store tokens, activate."""
    tenant_id, state = _split_state(combined_state)
    unknown = AuthorizationFlowError("this authorization is unknown, expired or already used; start again")
    pending = services.table.peek_oauth_state(tenant_id, state)
    if pending is None or pending.redirect_uri is None or pending.browser_hash is None:
        raise unknown
    same_browser = browser_binding is not None and hmac.compare_digest(
        pending.browser_hash, _digest(browser_binding)
    )
    # The binding is checked before the state is spent: a request without the browser's cookie (a
    # leaked callback URL) must not cancel the admin's authorization.
    if pending.browser_bound and not same_browser:
        raise AuthorizationFlowError(
            "this authorization was started in another browser; start again from the settings page"
        )
    if not services.table.spend_oauth_state(pending):
        raise unknown
    if error:
        reason = "the Canvas user declined access" if error == "access_denied" else f"Canvas answered {error}"
        raise AuthorizationFlowError(f"authorization not completed: {reason}")
    if not code:
        raise AuthorizationFlowError("Canvas sent no authorization code")
    tenant = require_tenant(services, tenant_id)
    canvas_url, _ = canvas_key_of_or_refuse(tenant)
    try:
        grant = oauth_client_for(services, tenant).exchange_code(code, pending.redirect_uri)
        if grant.refresh_token is None:
            raise AuthorizationFlowError("Canvas issued no refresh token")
        client = CanvasClient(
            canvas_url,
            FixedTokenSource(grant.access_token.get_secret_value()),
            allow_insecure=insecure_canvas_allowed(services, tenant),
            timeout_seconds=services.settings.canvas_timeout_seconds,
        )
        root = discover_root_account(client)
    except CanvasError as failure:
        raise AuthorizationFlowError(f"could not connect to Canvas: {failure}") from failure
    now = datetime.now(UTC)
    credentials = services.secrets.read(tenant_id, fresh=True).model_copy(
        update={
            "access_token": grant.access_token,
            "refresh_token": grant.refresh_token,
            "access_token_issued_at": now,
            "access_token_expires_at": now + timedelta(seconds=grant.expires_in or 3600),
        }
    )
    services.secrets.write(tenant_id, credentials)
    connected = tenant.model_copy(
        update={
            "status": TenantStatus.ACTIVE,
            "status_reason": None,
            "root_account_id": root.id,
            "root_account_uuid": root.uuid,
            "authorized_at": now,
            "authorized_by": f"{grant.user.name} ({grant.user.id})" if grant.user else None,
        }
    )
    services.table.update_tenant_status(connected)
    return connected


def canvas_key_of_or_refuse(tenant: Tenant) -> tuple[str, str]:
    try:
        return canvas_key_of(tenant)
    except CanvasError as error:
        raise TenantError(f"{error}: save them on the settings page first") from error


def discover_root_account(client: CanvasClient) -> CanvasAccount:
    accounts = [CanvasAccount.model_validate(item) for item in client.get_all(LIST_ADMIN_ACCOUNTS)]
    if not accounts:
        raise AuthorizationFlowError(
            "the Canvas user who authorized administers no account; authorize as an admin"
        )
    root_id = next(
        (account.id for account in accounts if account.root_account_id is None), accounts[0].root_account_id
    )
    return CanvasAccount.model_validate(client.get_one(GET_ACCOUNT, id=root_id or accounts[0].id))
