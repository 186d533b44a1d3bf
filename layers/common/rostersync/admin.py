"""What a signed-in tenant admin sees and may do; the tenant always comes from the admin's token."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from rostersync.authorization import begin_authorization
from rostersync.canvas.scopes import required_scopes
from rostersync.models import (
    DEFAULT_ROLE_MAP,
    CanvasId,
    CourseIdField,
    HeldSync,
    RosterRole,
    SyncSchedule,
    SyncTrigger,
    TenantStatus,
    UserIdField,
)
from rostersync.selftest import SelfTestReport, run_self_test
from rostersync.services import Services
from rostersync.sync.holds import approve_hold, decided_holds, pending_holds, reject_hold
from rostersync.sync.reports import run_summary
from rostersync.sync.requesting import request_sync
from rostersync.tenant_settings import (
    SyncListMode,
    canvas_course_roles,
    change_settings,
    parse_course_list_csv,
    select_all_courses,
    update_sync_list,
)
from rostersync.tenants import create_tenant, disconnect_tenant, require_tenant, save_canvas_settings


class CanvasSettingsForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=2048)

    canvas_url: str
    client_id: str
    client_secret: str | None = None  # blank keeps the saved secret


class CourseListForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=1_000_000)

    mode: SyncListMode
    csv: str
    confirm: bool = False


class AllCoursesForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: CanvasId | None = None  # None: the root account
    confirm: bool = False  # a change that may sync more than today needs it

    @field_validator("account_id", mode="before")
    @classmethod
    def _account_number(cls, value: object) -> object:
        # A name typed into the field must not become some other account (or the root) by coercion.
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        raise PydanticCustomError(
            "account_number",
            "give the account's number, as in its Canvas address (/accounts/N), not its name",
        )


class SyncSettingsForm(BaseModel):
    """The page's sync settings: what the CLI's `tenant configure` sets, but the account and sync list."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    user_id_field: UserIdField
    course_id_field: CourseIdField
    role_overrides: dict[Annotated[str, StringConstraints(min_length=1, max_length=100)], RosterRole] = Field(
        default_factory=dict, max_length=200
    )
    term_ids: tuple[CanvasId, ...] = Field(default=(), max_length=1000)
    include_unpublished: bool = False
    schedule: SyncSchedule
    mass_drop_threshold: float = Field(gt=0, le=1)
    mass_drop_min_enrollments: int = Field(ge=1, le=100_000)
    confirm: bool = False  # a change that may sync more than today needs it


class SyncNowForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    course_ids: tuple[CanvasId, ...] = Field(default=(), max_length=1000)  # empty: every selected course


class NewTenantForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=2048)

    name: str
    allow_insecure_canvas: bool = False  # development stacks only: the stack must allow it too


def tenant_overview(services: Services, tenant_id: str, callback_url: str) -> dict[str, Any]:
    """The settings page's data: never the client secret or a token (they live in Secrets Manager only)."""
    tenant = require_tenant(services, tenant_id)
    latest = services.table.list_runs(tenant_id, 1)
    last_run = run_summary(services, tenant_id, latest[0].run_id) if latest else None
    return {
        **tenant.model_dump(mode="json", exclude={"allow_insecure_canvas"}),
        "client_secret_saved": tenant.canvas_url is not None,
        "redirect_uri": callback_url,
        "developer_key_scopes": required_scopes(),
        "last_run": last_run.model_dump(mode="json") if last_run else None,
        "last_live_event": next(
            (record.model_dump(mode="json") for record in services.table.recent_live_events(tenant_id, 1)),
            None,
        ),
    }


def save_settings(services: Services, tenant_id: str, form: CanvasSettingsForm) -> dict[str, Any]:
    tenant = save_canvas_settings(
        services,
        tenant_id,
        canvas_url=form.canvas_url,
        client_id=form.client_id,
        client_secret=form.client_secret,
    )
    return {"status": tenant.status.value, "canvas_url": tenant.canvas_url, "client_id": tenant.client_id}


def start_authorization(services: Services, tenant_id: str, admin: str, api_url: str) -> str:
    return begin_authorization(services, tenant_id, api_url, admin)


def self_test(services: Services, tenant_id: str) -> SelfTestReport:
    return run_self_test(services, tenant_id)


def update_course_list(services: Services, tenant_id: str, form: CourseListForm) -> dict[str, Any]:
    references = parse_course_list_csv(form.csv)
    tenant = update_sync_list(services, tenant_id, form.mode, references, confirmed=form.confirm)
    return tenant.settings.courses.model_dump(mode="json")


def use_all_courses_of(services: Services, tenant_id: str, form: AllCoursesForm) -> dict[str, Any]:
    """Sync every published course of an account (the root account when None) instead of today's selection."""
    tenant = select_all_courses(services, tenant_id, form.account_id, confirmed=form.confirm)
    return tenant.settings.courses.model_dump(mode="json")


def save_sync_settings(services: Services, tenant_id: str, form: SyncSettingsForm) -> dict[str, Any]:
    current = require_tenant(services, tenant_id).settings.courses
    courses = current.model_copy(
        update={"term_ids": form.term_ids, "published_only": not form.include_unpublished}
    )
    changes = form.model_dump(exclude={"term_ids", "include_unpublished", "confirm"}) | {
        "courses": courses.model_dump()
    }
    tenant = change_settings(services, tenant_id, changes, confirmed=form.confirm)
    return tenant.settings.model_dump(mode="json")


def canvas_roles(services: Services, tenant_id: str) -> list[dict[str, str]]:
    """The roles a role mapping may name for the synced account, each with its label and base type; the
    base enrollment types are listed too (a mapping may name them)."""
    named = {
        role.role: {
            "name": role.role,
            "label": role.label or role.role,
            "base_type": role.base_role_type or role.role,
        }
        for role in canvas_course_roles(services, tenant_id)
    }
    for base in DEFAULT_ROLE_MAP:
        named.setdefault(base, {"name": base, "label": base, "base_type": base})
    return [named[name] for name in sorted(named)]


def disconnect(services: Services, tenant_id: str, admin: str) -> dict[str, Any]:
    tenant = disconnect_tenant(services, tenant_id, admin)
    return {"status": tenant.status.value, "status_reason": tenant.status_reason}


def add_tenant(services: Services, form: NewTenantForm) -> dict[str, Any]:
    """An operator's new tenant, named only: its admin enters the Canvas settings on the page."""
    tenant = create_tenant(services, name=form.name, allow_insecure_canvas=form.allow_insecure_canvas)
    return {"tenant_id": tenant.tenant_id, "name": tenant.name, "status": TenantStatus.NOT_CONFIGURED.value}


def recent_runs(services: Services, tenant_id: str, limit: int = 20) -> list[dict[str, Any]]:
    require_tenant(services, tenant_id)
    summaries = (
        run_summary(services, tenant_id, run.run_id) for run in services.table.list_runs(tenant_id, limit)
    )
    return [summary.model_dump(mode="json") for summary in summaries if summary is not None]


def sync_now(services: Services, tenant_id: str, course_ids: tuple[int, ...] = ()) -> str:
    require_tenant(services, tenant_id)
    return request_sync(services, tenant_id, SyncTrigger.MANUAL, course_ids, enforce_cooldown=True).run_id


def _hold_view(hold: HeldSync) -> dict[str, Any]:
    return hold.model_dump(mode="json", exclude={"puts", "deletes"}) | {
        "would_drop": len(hold.drops or hold.puts)
    }


def held_syncs(services: Services, tenant_id: str) -> list[dict[str, Any]]:
    return [_hold_view(hold) for hold in pending_holds(services, tenant_id)]


def hold_decisions(services: Services, tenant_id: str) -> list[dict[str, Any]]:
    return [_hold_view(hold) for hold in decided_holds(services, tenant_id)]


def decide_hold(
    services: Services, tenant_id: str, course_id: int, *, approve: bool, decided_by: str
) -> dict[str, Any]:
    hold = (approve_hold if approve else reject_hold)(services, tenant_id, course_id, decided_by)
    return _hold_view(hold) | {"decision": hold.status.value}
