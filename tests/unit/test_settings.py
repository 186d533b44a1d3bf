from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from rostersync.models import RosterRole, SyncRun, SyncSchedule, TenantSettings


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
