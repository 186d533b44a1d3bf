from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from rostersync.models import RosterRole, SyncRun, SyncSchedule, TenantSettings
from rostersync.settings import environment_variables, load_settings


def test_hourly_schedule_runs_an_hour_later() -> None:
    now = datetime(2026, 11, 26, 10, 7, tzinfo=UTC)
    assert SyncSchedule(every_minutes=60).next_run(now) == datetime(2026, 11, 26, 11, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 01:00 in Chicago (CST, UTC-6) on a winter day: later the same night.
        (datetime(2026, 11, 26, 7, 0, tzinfo=UTC), datetime(2026, 11, 26, 8, 0, tzinfo=UTC)),
        # Just after 02:00 local: the next night.
        (datetime(2026, 11, 26, 8, 1, tzinfo=UTC), datetime(2026, 11, 27, 8, 0, tzinfo=UTC)),
        # Summer time (CDT, UTC-5): the same local time is an hour earlier in UTC.
        (datetime(2026, 7, 1, 12, 0, tzinfo=UTC), datetime(2026, 7, 2, 7, 0, tzinfo=UTC)),
    ],
)
def test_nightly_schedule_follows_the_tenants_time_zone(now: datetime, expected: datetime) -> None:
    schedule = SyncSchedule(every_minutes=None, daily_at="02:00", timezone="America/Chicago")
    assert schedule.next_run(now) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"every_minutes": 5},  # too often for Canvas
        {"every_minutes": None, "daily_at": None},
        {"every_minutes": 60, "daily_at": "02:00"},
        {"every_minutes": None, "daily_at": "25:00"},
        {"timezone": "Mars/Olympus"},
    ],
)
def test_invalid_schedules_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SyncSchedule.model_validate(fields)


def test_roles_follow_base_types_unless_overridden_and_the_test_student_never_syncs() -> None:
    settings = TenantSettings(
        role_overrides={"Lab Student": RosterRole.EXCLUDED, "StudentViewEnrollment": RosterRole.STUDENT}
    )
    assert settings.roster_role("StudentEnrollment", "StudentEnrollment") is RosterRole.STUDENT
    assert settings.roster_role("StudentEnrollment", "Lab Student") is RosterRole.EXCLUDED
    assert settings.roster_role("TaEnrollment", "TaEnrollment") is RosterRole.INSTRUCTOR
    assert settings.roster_role("DesignerEnrollment", "DesignerEnrollment") is RosterRole.COURSE_ADMIN
    assert settings.roster_role("ObserverEnrollment", "ObserverEnrollment") is RosterRole.EXCLUDED
    assert settings.roster_role("StudentViewEnrollment", "StudentViewEnrollment") is RosterRole.EXCLUDED


def test_mass_drop_threshold_is_a_share() -> None:
    with pytest.raises(ValidationError):
        TenantSettings(mass_drop_threshold=1.5)


def test_a_daily_time_that_is_not_hh_mm_is_explained_not_shown_as_a_pattern() -> None:
    with pytest.raises(ValidationError) as refused:
        SyncSchedule(every_minutes=None, daily_at="6:30pm")
    assert "HH:MM, 24-hour" in str(refused.value) and "[01]" not in str(refused.value)


def test_a_run_row_stored_before_the_rename_keeps_its_planner_request_count() -> None:
    stored = {"tenant_id": "t", "run_id": "r", "trigger": "manual", "canvas_requests": 4}
    run = SyncRun.model_validate(stored)
    assert run.planning_canvas_requests == 4
    assert "canvas_requests" not in run.model_dump()


@pytest.fixture
def function_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The variables template.yaml gives every function, read afresh by load_settings."""
    for name, value in {
        "ROSTER_TABLE_NAME": "roster-table",
        "COURSE_SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/course-syncs",
        "SYNC_REQUEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/sync-requests",
        "TENANT_SECRET_PREFIX": "rostersync/test/tenants",
    }.items():
        monkeypatch.setenv(name, value)
    load_settings.cache_clear()
    yield monkeypatch
    load_settings.cache_clear()


def test_deployment_settings_are_read_from_the_environment_and_typed(
    function_environment: pytest.MonkeyPatch,
) -> None:
    function_environment.setenv("ALLOW_INSECURE_CANVAS_URLS", "true")
    function_environment.setenv("CANVAS_CONCURRENCY_PER_TENANT", "9")
    function_environment.setenv("ROSTERSYNC_DEVELOPMENT_TOKENS", "1")
    settings = load_settings()
    assert settings.table_name == "roster-table"
    assert settings.tenant_secret_prefix == "rostersync/test/tenants"
    assert settings.allow_insecure_canvas_urls is True
    assert settings.canvas_concurrency_per_tenant == 9
    assert settings.development_tokens is True
    assert settings.feed_retention_days == 30  # not set: the default
    assert {
        "ROSTER_TABLE_NAME",
        "ROSTERSYNC_DEVELOPMENT_TOKENS",
        "FEED_RETENTION_DAYS",
    } <= environment_variables()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ROSTER_TABLE_NAME", None, "ROSTER_TABLE_NAME: Field required"),
        ("CANVAS_CONCURRENCY_PER_TENANT", "0", "CANVAS_CONCURRENCY_PER_TENANT: Input should be greater"),
        ("ALLOW_INSECURE_CANVAS_URLS", "perhaps", "ALLOW_INSECURE_CANVAS_URLS: Input should be a valid"),
    ],
)
def test_a_missing_or_malformed_setting_fails_naming_it(
    function_environment: pytest.MonkeyPatch, variable: str, value: str | None, message: str
) -> None:
    if value is None:
        function_environment.delenv(variable)
    else:
        function_environment.setenv(variable, value)
    with pytest.raises(ValueError, match=message) as raised:
        load_settings()
    assert "perhaps" not in str(raised.value)  # the variable is named, its value is not repeated
