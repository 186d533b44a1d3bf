from datetime import UTC, datetime

import pytest

from rostersync.canvas.models import CanvasCourse, CanvasEnrollment, CanvasSection, CanvasUser
from rostersync.models import RosterEnrollment, RosterRole, TenantSettings
from rostersync.store.rosters import StoredItem
from rostersync.sync.roster import (
    build_course_roster,
    diff_roster,
    excluded_keys,
    roster_items,
    split_mass_drop,
)

COURSE = CanvasCourse(id=101, name="My nickname", original_name="Anatomy I", workflow_state="available")
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def enrollment(enrollment_id: int, user_id: int, **fields: object) -> CanvasEnrollment:
    values: dict[str, object] = {
        "id": enrollment_id,
        "user_id": user_id,
        "course_id": 101,
        "course_section_id": 1001,
        "type": "StudentEnrollment",
        "role": "StudentEnrollment",
        "role_id": 3,
        "enrollment_state": "active",
        "user": {
            "id": user_id,
            "name": f"User {user_id}",
            "sortable_name": f"{user_id}, User",
            "sis_user_id": f"S{user_id}",
        },
    }
    values.update(fields)
    return CanvasEnrollment.model_validate(values)


def test_roster_uses_the_real_course_name_not_the_nickname() -> None:
    assert build_course_roster(COURSE, [], []).course.name == "Anatomy I"


def test_test_student_and_observers_never_sync() -> None:
    roster = build_course_roster(
        COURSE,
        [],
        [
            enrollment(1, 11),
            enrollment(2, 12, type="StudentViewEnrollment", role="StudentViewEnrollment"),
            enrollment(3, 13, type="ObserverEnrollment", role="ObserverEnrollment"),
        ],
    )
    assert [item.canvas_id for item in roster.enrollments] == [1]
    assert [user.canvas_id for user in roster.users] == [11]


def test_a_user_with_two_sections_appears_once() -> None:
    roster = build_course_roster(COURSE, [], [enrollment(1, 11), enrollment(2, 11, course_section_id=1002)])
    assert len(roster.enrollments) == 2
    assert [user.canvas_id for user in roster.users] == [11]


def test_cross_listed_section_belongs_to_its_current_course_and_keeps_its_origin() -> None:
    sections = [
        CanvasSection(id=1001, name="A", course_id=101),
        CanvasSection(id=1009, name="Moved in", course_id=101, nonxlist_course_id=150),
        CanvasSection(id=1010, name="Moved out", course_id=160, nonxlist_course_id=101),
    ]
    roster = build_course_roster(COURSE, sections, [])
    assert [(section.canvas_id, section.nonxlist_course_id) for section in roster.sections] == [
        (1001, None),
        (1009, 150),
    ]


def test_emails_come_from_the_users_listing() -> None:
    listed = [CanvasUser(id=11, name="User 11", email="u11@example.edu")]
    roster = build_course_roster(COURSE, [], [enrollment(1, 11)], listed)
    assert roster.users[0].email == "u11@example.edu"
    assert roster.users[0].sis_user_id == "S11"


def test_only_active_enrollments_are_active() -> None:
    states = ["active", "invited", "inactive", "completed"]
    roster = build_course_roster(
        COURSE, [], [enrollment(i, 10 + i, enrollment_state=s) for i, s in enumerate(states)]
    )
    assert [(item.state, item.active) for item in roster.enrollments] == [
        ("active", True),
        ("invited", False),
        ("inactive", False),
        ("completed", False),
    ]


def test_unchanged_roster_writes_nothing() -> None:
    section = CanvasSection(id=1001, name="A", course_id=101)
    # Two reads of the same Canvas data, listed in another order: equal content, distinct objects.
    stored = roster_items(build_course_roster(COURSE, [section], [enrollment(1, 11), enrollment(2, 12)]))
    desired = roster_items(
        build_course_roster(COURSE, [section.model_copy()], [enrollment(2, 12), enrollment(1, 11)])
    )
    changes = diff_roster(stored, desired, NOW)
    assert changes.puts == [] and changes.deletes == []
    assert changes.counts.unchanged == len(desired) == 5
    assert (changes.counts.created, changes.counts.updated, changes.counts.dropped) == (0, 0, 0)


def students(count: int) -> dict[str, StoredItem]:
    return roster_items(
        build_course_roster(COURSE, [], [enrollment(n, 1000 + n) for n in range(1, count + 1)])
    )


def drop(stored: dict[str, StoredItem], how_many: int) -> dict[str, StoredItem]:
    dropped = {f"ENROLLMENT#{n}" for n in range(1, how_many + 1)}
    return {sk: item for sk, item in stored.items() if sk not in dropped}


@pytest.mark.parametrize(
    ("active", "dropped", "held"),
    [
        (20, 5, False),  # exactly the 25 % share: applied
        (20, 6, True),  # just above it: held
        (10, 4, False),  # 40 %, but under the 5-drop minimum: applied
        (10, 5, True),  # 50 % and the minimum reached: held
    ],
)
def test_the_mass_drop_rule_at_its_boundaries(active: int, dropped: int, held: bool) -> None:
    settings = TenantSettings(mass_drop_threshold=0.25, mass_drop_min_enrollments=5)
    stored = students(active)
    applied, mass_drop = split_mass_drop(diff_roster(stored, drop(stored, dropped), NOW), settings)
    assert (mass_drop is not None) is held
    if mass_drop is not None:
        assert (mass_drop.student_drops, mass_drop.active_before) == (dropped, active)
        assert applied.counts.dropped == 0 and not any(i.sk.startswith("ENROLLMENT#") for i in applied.puts)
    else:
        assert applied.counts.dropped == dropped


def test_changed_and_new_items_are_written() -> None:
    before = roster_items(build_course_roster(COURSE, [], [enrollment(1, 11)]))
    after = roster_items(
        build_course_roster(COURSE, [], [enrollment(1, 11, enrollment_state="inactive"), enrollment(2, 12)])
    )
    changes = diff_roster(before, after, NOW)
    assert (changes.counts.created, changes.counts.updated, changes.counts.unchanged) == (2, 1, 1)
    assert sorted(item.sk for item in changes.puts) == ["ENROLLMENT#1", "ENROLLMENT#2", "USER#12"]


def test_an_enrollment_that_left_canvas_is_kept_inactive_with_a_reason_once() -> None:
    before = roster_items(
        build_course_roster(COURSE, [CanvasSection(id=1001, name="A", course_id=101)], [enrollment(1, 11)])
    )
    changes = diff_roster(before, {}, NOW)
    assert changes.deletes == ["SECTION#1001"]
    (dropped_item,) = changes.puts
    dropped = RosterEnrollment.model_validate_json(dropped_item.data)
    assert (dropped.active, dropped.dropped_reason, dropped.dropped_at) == (False, "not_in_canvas", NOW)
    assert changes.counts.dropped == 2
    # The next sync finds it already dropped (and its user still referenced): nothing to write.
    stored = {**before, dropped_item.sk: dropped_item}
    del stored["SECTION#1001"]
    again = diff_roster(stored, {}, NOW)
    assert again.puts == [] and again.deletes == []


def test_an_enrollment_the_role_mapping_now_excludes_is_dropped_for_that_reason() -> None:
    lab = enrollment(2, 12, role="Lab Student", role_id=10)
    before_settings = TenantSettings()
    after_settings = TenantSettings(role_overrides={"Lab Student": RosterRole.EXCLUDED})
    before = roster_items(build_course_roster(COURSE, [], [enrollment(1, 11), lab], [], before_settings))
    roster = build_course_roster(COURSE, [], [enrollment(1, 11), lab], [], after_settings)
    assert roster.excluded_enrollment_ids == {2}
    changes = diff_roster(before, roster_items(roster), NOW, excluded_keys(roster))
    (dropped_item,) = changes.puts
    dropped = RosterEnrollment.model_validate_json(dropped_item.data)
    assert (dropped_item.sk, dropped.active, dropped.dropped_reason) == (
        "ENROLLMENT#2",
        False,
        "role_excluded",
    )
    # An enrollment that left Canvas meanwhile is still "not_in_canvas".
    gone = diff_roster(before, roster_items(build_course_roster(COURSE, [], [enrollment(1, 11)])), NOW)
    assert RosterEnrollment.model_validate_json(gone.puts[0].data).dropped_reason == "not_in_canvas"
