"""The live-event parser: classification, id and timestamp normalisation, Canvas/Caliper equivalence."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rostersync.events import ObjectType, parse_event
from rostersync.events.caliper_format import caliper_event_name
from rostersync.events.normalize import IdError, parse_caliper_urn, parse_timestamp, to_local_id

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "live_events"
FIXTURE_FILES = sorted(FIXTURES.glob("*/*.json"))

# Canvas's documented list of Canvas-format event types, typed out here
# independently of rostersync.events.catalog.
DOCUMENTED = [
    "account_created",
    "account_notification_created",
    "account_updated",
    "asset_accessed",
    "assignment_created",
    "assignment_group_created",
    "assignment_group_updated",
    "assignment_override_created",
    "assignment_override_updated",
    "assignment_updated",
    "attachment_created",
    "attachment_deleted",
    "attachment_updated",
    "content_migration_completed",
    "content_migration_started",
    "conversation_created",
    "conversation_forwarded",
    "conversation_message_created",
    "course_completed",
    "course_created",
    "course_grade_change",
    "course_progress",
    "course_section_created",
    "course_section_updated",
    "course_updated",
    "discussion_entry_created",
    "discussion_entry_submitted",
    "discussion_topic_created",
    "discussion_topic_updated",
    "enrollment_created",
    "enrollment_state_created",
    "enrollment_state_updated",
    "enrollment_updated",
    "final_grade_custom_status",
    "grade_change",
    "grade_override",
    "group_category_created",
    "group_category_updated",
    "group_created",
    "group_membership_created",
    "group_membership_updated",
    "group_updated",
    "learning_outcome_created",
    "learning_outcome_group_created",
    "learning_outcome_group_updated",
    "learning_outcome_link_created",
    "learning_outcome_link_updated",
    "learning_outcome_result_created",
    "learning_outcome_result_updated",
    "learning_outcome_updated",
    "logged_in",
    "logged_out",
    "lti_resource_link_created",
    "lti_resource_link_updated",
    "master_migration_started",
    "module_created",
    "module_item_created",
    "module_item_updated",
    "module_updated",
    "outcome_calculation_method_created",
    "outcome_calculation_method_updated",
    "outcome_proficiency_created",
    "outcome_proficiency_updated",
    "outcomes.retry_outcome_alignment_clone",
    "plagiarism_resubmit",
    "quiz_created",
    "quiz_submitted",
    "quiz_updated",
    "rubric_assessed",
    "sis_batch_created",
    "sis_batch_updated",
    "submission_comment_created",
    "submission_created",
    "submission_custom_grade_status",
    "submission_updated",
    "syllabus_updated",
    "user_account_association_created",
    "user_created",
    "user_updated",
    "wiki_page_created",
    "wiki_page_deleted",
    "wiki_page_updated",
]

ROSTER_OK = {
    "course_created": ObjectType.COURSE,
    "course_updated": ObjectType.COURSE,
    "course_section_created": ObjectType.SECTION,
    "course_section_updated": ObjectType.SECTION,
    "enrollment_created": ObjectType.ENROLLMENT,
    "enrollment_updated": ObjectType.ENROLLMENT,
    "enrollment_state_created": ObjectType.ENROLLMENT_STATE,
    "enrollment_state_updated": ObjectType.ENROLLMENT_STATE,
    "user_created": ObjectType.USER,
    "user_updated": ObjectType.USER,
    "sis_batch_created": ObjectType.SIS_BATCH,
    "sis_batch_updated": ObjectType.SIS_BATCH,
    "account_created": ObjectType.ACCOUNT,
    "account_updated": ObjectType.ACCOUNT,
    "user_account_association_created": ObjectType.USER_ACCOUNT_ASSOCIATION,
}

EXPECTED_FIXTURES = {
    "canvas/account_created.json": ("ok", "account_created"),
    "canvas/course_completed.json": ("ignored", "course_completed"),
    "canvas/course_section_created.json": ("ok", "course_section_created"),
    "canvas/course_section_updated_crosslist.json": ("ok", "course_section_updated"),
    "canvas/course_updated.json": ("ok", "course_updated"),
    "canvas/enrollment_created.json": ("ok", "enrollment_created"),
    "canvas/enrollment_state_created.json": ("ok", "enrollment_state_created"),
    "canvas/enrollment_state_updated.json": ("ok", "enrollment_state_updated"),
    "canvas/enrollment_updated.json": ("ok", "enrollment_updated"),
    "canvas/grade_override.json": ("ignored", "grade_change"),  # documented quirk: metadata says grade_change
    "canvas/sis_batch_updated.json": ("ok", "sis_batch_updated"),
    "canvas/user_created.json": ("ok", "user_created"),
    "canvas/user_updated.json": ("ok", "user_updated"),
    "caliper/course_updated.json": ("ok", "course_updated"),
    "caliper/enrollment_created.json": ("ok", "enrollment_created"),
    "caliper/enrollment_state_created.json": ("ok", "enrollment_state_created"),
    "caliper/enrollment_updated.json": ("ok", "enrollment_updated"),
    "caliper/grade_change.json": ("ignored", "grade_change"),
    "caliper/syllabus_updated.json": ("ignored", "syllabus_updated"),
    "caliper/user_account_association_created.json": ("ok", "user_account_association_created"),
}


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return document


def canvas_event(event_name: str, body: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "event_name": event_name,
            "event_time": "2019-11-01T19:11:12.546Z",
            "root_account_id": "21070000000000001",
            "root_account_uuid": "VicYj3cu5BIFpoZhDVU4DZumnlBrWi1grgJEzADs",
            "hostname": "school.instructure.com",
            **metadata,
        },
        "body": body,
    }


# -- every fixture ---------------------------------------------------------------------------------------
def test_the_fixture_set_is_the_expected_one() -> None:
    assert {path.relative_to(FIXTURES).as_posix() for path in FIXTURE_FILES} == set(EXPECTED_FIXTURES)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_fixture_parses_to_its_expected_classification(path: Path) -> None:
    parsed = parse_event(path.read_text(encoding="utf-8"))
    status, event_name = EXPECTED_FIXTURES[path.relative_to(FIXTURES).as_posix()]
    assert parsed.status == status, parsed.reason
    assert parsed.event is not None
    assert parsed.event.event_name == event_name
    assert parsed.event.event_time.tzinfo is not None
    if status == "ok":
        assert parsed.reason is None
        assert parsed.event.object_type is ROSTER_OK[event_name]
        assert parsed.event.object_id is not None
    else:
        assert parsed.reason is not None and parsed.reason.startswith("not roster-relevant: ")
        assert parsed.event.object_type is None


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_fixtures_parse_the_same_from_text_bytes_and_dict(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    from_text = parse_event(text)
    assert parse_event(text.encode("utf-8")) == from_text
    assert parse_event(json.loads(text)) == from_text


# -- ids -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("21070000000000565", 565),
        (21070000000000565, 565),
        ("565", 565),
        (565, 565),
        (" 565 ", 565),
        ("2107~565", 565),
        ("210700000000101907", 101907),  # the 18-digit assignment_group_id of the docs
        ("21071234567890123", 1234567890123),  # a 13-digit local id survives
        (21071234567890123, 1234567890123),
        (565.0, 565),
        (None, None),
        ("", None),
    ],
)
def test_ids_are_normalised_to_local_integers(value: Any, expected: int | None) -> None:
    assert to_local_id(value) == expected


@pytest.mark.parametrize("value", ["abc", "56 5", "-5", -5, True, 1.5, [565], {"id": 565}, "٥٦٥", "9" * 50])
def test_non_ids_are_refused(value: Any) -> None:
    with pytest.raises(IdError):
        to_local_id(value)


def test_caliper_urns_split_into_typed_ids() -> None:
    urn = "urn:instructure:canvas:course:21070000000000565:section:21070000000004811"
    assert parse_caliper_urn(urn) == {"course": "21070000000000565", "section": "21070000000004811"}
    assert parse_caliper_urn("http://oxana.instructure.com/") == {}


def test_global_string_ids_in_a_canvas_body_become_local() -> None:
    event = load("canvas/enrollment_created.json")
    parsed = parse_event(event)
    assert parsed.event is not None
    assert parsed.event.model_dump(include={"enrollment_id", "course_id", "section_id", "user_id"}) == {
        "enrollment_id": 46825,
        "course_id": 565,
        "section_id": 4811,
        "user_id": 20064,
    }
    assert parsed.event.associated_user_id == 562
    assert parsed.event.root_account_id == 1
    assert parsed.event.actor_user_id == 1  # metadata.user_id is who acted, not the enrolled user


def test_integer_ids_give_the_same_result_as_string_ids() -> None:
    as_strings = load("canvas/enrollment_created.json")
    as_ints = copy.deepcopy(as_strings)
    for key in ("course_id", "course_section_id", "enrollment_id", "user_id", "associated_user_id"):
        as_ints["body"][key] = int(as_ints["body"][key])
    as_ints["metadata"]["root_account_id"] = 21070000000000001
    local = copy.deepcopy(as_strings)
    for key in ("course_id", "course_section_id", "enrollment_id", "user_id", "associated_user_id"):
        local["body"][key] = str(int(local["body"][key]) % 10**13)
    assert parse_event(as_ints) == parse_event(as_strings) == parse_event(local)


def test_account_events_carry_integer_ids() -> None:
    parsed = parse_event(load("canvas/account_created.json"))
    assert parsed.event is not None
    assert (parsed.event.account_id, parsed.event.parent_account_id) == (3, 2)
    assert parsed.event.hostname is None  # system-generated: no request, no hostname


def test_the_user_event_uses_the_body_user_not_the_acting_admin() -> None:
    parsed = parse_event(load("canvas/user_created.json"))
    assert parsed.event is not None
    assert (parsed.event.user_id, parsed.event.actor_user_id) == (25999, 1)
    assert (parsed.event.sis_id, parsed.event.login_id, parsed.event.workflow_state) == (
        "456-T45",
        "test",
        "pre_registered",
    )


# -- Canvas and Caliper ------------------------------------------------------------------------------------
def test_caliper_and_canvas_versions_of_an_enrollment_event_give_the_same_ids() -> None:
    canvas = parse_event(load("canvas/enrollment_created.json")).event
    caliper = parse_event(load("caliper/enrollment_created.json")).event
    assert canvas is not None and caliper is not None
    assert (canvas.format, caliper.format) == ("canvas", "caliper")
    fields = {
        "event_name",
        "object_type",
        "object_id",
        "enrollment_id",
        "course_id",
        "section_id",
        "user_id",
        "root_account_id",
        "root_account_uuid",
        "hostname",
        "enrollment_type",
        "workflow_state",
        "event_time",
        "created_at",
    }
    assert canvas.model_dump(include=fields) == caliper.model_dump(include=fields)
    assert caliper.enrollment_id == 46825 and caliper.section_id == 4811 and caliper.user_id == 20064


def test_caliper_enrollment_state_is_told_apart_from_enrollment_by_its_state_field() -> None:
    parsed = parse_event(load("caliper/enrollment_state_created.json"))
    assert parsed.event is not None
    assert (parsed.event.event_name, parsed.event.enrollment_id, parsed.event.state) == (
        "enrollment_state_created",
        143,
        "pending_invited",
    )
    assert parsed.event.workflow_state is None


@pytest.mark.parametrize(
    ("extension", "expected"),
    [
        ({"state": "active"}, "enrollment_state_updated"),
        ({"workflow_state": "active", "type": "StudentEnrollment"}, "enrollment_updated"),
        ({"workflow_state": "active", "state": "active"}, "enrollment_updated"),
    ],
)
def test_caliper_enrollment_urns_split_by_extension_fields(extension: dict[str, Any], expected: str) -> None:
    event = {
        "type": "Event",
        "action": "Modified",
        "object": {
            "id": "urn:instructure:canvas:enrollment:1",
            "type": "Entity",
            "extensions": {"com.instructure.canvas": extension},
        },
    }
    assert caliper_event_name(event) == expected


def test_caliper_syllabus_update_on_a_course_urn_is_not_a_course_update() -> None:
    document = load("caliper/syllabus_updated.json")
    assert caliper_event_name(document["data"][0]) == "syllabus_updated"
    course = load("caliper/course_updated.json")
    assert caliper_event_name(course["data"][0]) == "course_updated"


def test_caliper_course_and_account_association_events() -> None:
    course = parse_event(load("caliper/course_updated.json")).event
    assert course is not None
    assert (course.course_id, course.name, course.workflow_state) == (56, "Linear Algebra", "available")
    association = parse_event(load("caliper/user_account_association_created.json")).event
    assert association is not None
    assert (association.user_id, association.account_id) == (42342, 1)


def test_system_generated_caliper_event_without_actor_extensions_still_parses() -> None:
    document = load("caliper/enrollment_updated.json")
    document["sensor"] = "http://www.canvaslms.com/"
    event = document["data"][0]
    event["actor"] = {"id": "http://www.canvaslms.com/", "type": "SoftwareApplication"}
    event["extensions"] = {"com.instructure.canvas": {"job_id": "1", "job_tag": "SIS::CSV::Import"}}
    parsed = parse_event(document)
    assert parsed.status == "ok"
    assert parsed.event is not None
    assert parsed.event.hostname is None and parsed.event.root_account_uuid is None
    assert parsed.event.actor_user_id is None and parsed.event.job_tag == "SIS::CSV::Import"
    assert parsed.event.enrollment_id == 549222


@pytest.mark.parametrize(
    ("event_type", "action", "object_id", "object_type", "expected"),
    [
        ("Event", "Deleted", "urn:instructure:canvas:course:1", "CourseOffering", None),
        ("Event", "Deleted", "urn:instructure:canvas:attachment:1", "Document", "attachment_deleted"),
        (
            "NavigationEvent",
            "NavigatedTo",
            "urn:instructure:canvas:course:1",
            "CourseOffering",
            "asset_accessed",
        ),
        ("SessionEvent", "LoggedOut", "http://oxana.instructure.com/", "SoftwareApplication", "logged_out"),
        ("AssessmentEvent", "Submitted", "urn:instructure:canvas:submission:1", "Attempt", "quiz_submitted"),
        (
            "AssignableEvent",
            "Submitted",
            "urn:instructure:canvas:submission:1",
            "Attempt",
            "submission_created",
        ),
        ("Event", "Modified", "urn:instructure:canvas:wikiPage:1", "Page", "wiki_page_updated"),
        ("Event", "Created", "urn:instructure:canvas:account:1", "Entity", None),  # no user_id extension
        ("Event", "Frobbed", "urn:instructure:canvas:course:1", "CourseOffering", None),
    ],
)
def test_caliper_event_names(
    event_type: str, action: str, object_id: str, object_type: str, expected: str | None
) -> None:
    event = {"type": event_type, "action": action, "object": {"id": object_id, "type": object_type}}
    assert caliper_event_name(event) == expected


def test_unrecognised_caliper_events_are_ignored_with_their_shape() -> None:
    document = load("caliper/course_updated.json")
    document["data"][0]["action"] = "Deleted"
    parsed = parse_event(document)
    assert parsed.status == "ignored"
    assert parsed.reason is not None and parsed.reason.startswith("unrecognised Caliper event")
    assert "Deleted" in parsed.reason and "course" in parsed.reason


# -- classification of every documented event ---------------------------------------------------------
def test_the_documented_list_has_82_events() -> None:
    assert len(set(DOCUMENTED)) == len(DOCUMENTED) == 82
    assert set(ROSTER_OK) <= set(DOCUMENTED)


@pytest.mark.parametrize("event_name", DOCUMENTED)
def test_every_documented_event_is_ok_or_ignored_with_a_reason(event_name: str) -> None:
    body = {
        "course_id": "21070000000000565",
        "course_section_id": "21070000000004811",
        "enrollment_id": "21070000000046825",
        "user_id": "21070000000020064",
        "sis_batch_id": "1440004",
        "account_id": 3,
    }
    parsed = parse_event(canvas_event(event_name, body))
    assert parsed.event is not None and parsed.event.event_name == event_name
    if event_name in ROSTER_OK:
        assert parsed.status == "ok", parsed.reason
        assert parsed.event.object_type is ROSTER_OK[event_name]
    else:
        assert parsed.status == "ignored"
        assert parsed.reason is not None and parsed.reason.startswith(f"not roster-relevant: {event_name}")
        assert parsed.event.object_type is None and parsed.event.course_id is None


def test_course_completed_is_module_progress_and_ignored() -> None:
    parsed = parse_event(load("canvas/course_completed.json"))
    assert parsed.status == "ignored"
    assert parsed.reason is not None and "module-requirement progress" in parsed.reason


def test_undocumented_event_names_are_ignored_as_unknown() -> None:
    parsed = parse_event(canvas_event("brand_new_thing_created", {}))
    assert parsed.status == "ignored"
    assert parsed.reason == "unknown event type: brand_new_thing_created (not in Canvas's documented list)"


# -- cross-listing --------------------------------------------------------------------------------------
def test_cross_listed_section_keeps_its_original_course() -> None:
    parsed = parse_event(load("canvas/course_section_updated_crosslist.json"))
    assert parsed.event is not None
    assert (parsed.event.section_id, parsed.event.course_id, parsed.event.nonxlist_course_id) == (
        7972,
        565,
        456,
    )
    assert parsed.event.cross_listed is True


@pytest.mark.parametrize(
    ("nonxlist", "expected"), [(None, False), ("565", False), ("21070000000000565", False)]
)
def test_a_section_in_its_own_course_is_not_cross_listed(nonxlist: str | None, expected: bool) -> None:
    body = {"course_section_id": "7972", "course_id": "565", "nonxlist_course_id": nonxlist}
    parsed = parse_event(canvas_event("course_section_updated", body))
    assert parsed.event is not None and parsed.event.cross_listed is expected


# -- timestamps -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-10-09T21:07:33Z", datetime(2018, 10, 9, 21, 7, 33, tzinfo=UTC)),
        ("2019-11-01T19:11:00.802Z", datetime(2019, 11, 1, 19, 11, 0, 802000, tzinfo=UTC)),
        ("2019-11-05 07:38:00 -0800", datetime(2019, 11, 5, 15, 38, tzinfo=UTC)),
        ("2019-11-05T07:38:00-08:00", datetime(2019, 11, 5, 15, 38, tzinfo=UTC)),
        ("2019-11-05 07:38:00 UTC", datetime(2019, 11, 5, 7, 38, tzinfo=UTC)),
        ("2019-11-05T07:38:00", datetime(2019, 11, 5, 7, 38, tzinfo=UTC)),
        ("2019-11-05T07:38:00.123456789Z", datetime(2019, 11, 5, 7, 38, 0, 123456, tzinfo=UTC)),
        (1572635460, datetime(2019, 11, 1, 19, 11, tzinfo=UTC)),
        (1572635460000, datetime(2019, 11, 1, 19, 11, tzinfo=UTC)),
    ],
)
def test_timestamps_in_every_documented_style(text: str | int, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["019-11-01T19:11:01.163Z", "yesterday", "2019-13-01T00:00:00Z", "2019-11-01T19:11Z+5"]
)
def test_unparseable_timestamps_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        parse_timestamp(text)


def test_ruby_style_event_time_is_read_as_utc() -> None:
    parsed = parse_event(load("canvas/course_updated.json"))
    assert parsed.event is not None
    assert parsed.event.event_time == datetime(2019, 11, 5, 15, 38, tzinfo=UTC)
    assert parsed.event.updated_at == datetime(2019, 11, 5, 15, 38, tzinfo=UTC)


def test_a_typo_in_updated_at_is_dropped_with_a_warning_not_fatal() -> None:
    parsed = parse_event(load("canvas/user_updated.json"))
    assert parsed.status == "ok"
    assert parsed.event is not None and parsed.event.updated_at is None
    assert parsed.warnings == ("body.updated_at unparseable, ignored: '019-11-01T19:11:01.163Z'",)


# -- dedupe -----------------------------------------------------------------------------------------------
def test_dedupe_keys_are_stable_and_distinct() -> None:
    first = parse_event(load("canvas/enrollment_created.json")).event
    again = parse_event(load("canvas/enrollment_created.json")).event
    updated = parse_event(load("canvas/enrollment_updated.json")).event
    caliper = parse_event(load("caliper/enrollment_created.json")).event
    assert first is not None and again is not None and updated is not None and caliper is not None
    assert first.dedupe_key == again.dedupe_key != updated.dedupe_key
    assert caliper.raw_event_id == "urn:uuid:1145bf32-0ada-462d-9c97-7acd5b513472"
    assert caliper.dedupe_key == "caliper:urn:uuid:1145bf32-0ada-462d-9c97-7acd5b513472"


def test_a_canvas_event_id_in_metadata_is_used_for_dedupe() -> None:
    parsed = parse_event(canvas_event("user_created", {"user_id": "5"}, event_id="evt-1"))
    assert parsed.event is not None
    assert (parsed.event.raw_event_id, parsed.event.dedupe_key) == ("evt-1", "canvas:evt-1")


# -- invalid input --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty input"),
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object (got list)"),
        ("null", "not a JSON object (got NoneType)"),
        (b"\xff\xfe", "not UTF-8 text"),
        ("eyJhbGciOiJSUzI1NiJ9.eyJhIjoxfQ.c2ln", "a signed JWT, not JSON"),
        ({"foo": 1}, "neither a Canvas event"),
        ({"body": {}}, "Canvas event without a metadata object"),
        ({"metadata": "x", "body": {}}, "Canvas event without a metadata object"),
        ({"metadata": {"event_time": "2019-11-01T00:00:00Z"}, "body": {}}, "metadata.event_name is missing"),
        ({"metadata": {"event_name": " "}, "body": {}}, "metadata.event_name is missing"),
        ({"metadata": {"event_name": "user_created"}, "body": ["x"]}, "body is not an object (got list)"),
        ({"data": []}, "Caliper envelope without data[0]"),
        ({"data": ["x"]}, "Caliper data[0] is not an object"),
        ({"data": [{"object": {}}]}, "Caliper data[0].action is missing"),
        ({"data": [{"action": "Created"}]}, "Caliper data[0].object is missing"),
    ],
)
def test_malformed_input_is_invalid_with_a_clear_reason(raw: Any, reason: str) -> None:
    parsed = parse_event(raw)
    assert parsed.status == "invalid"
    assert parsed.reason is not None and parsed.reason.startswith(reason), parsed.reason
    assert parsed.event is None


def test_non_text_input_is_invalid_not_an_exception() -> None:
    parsed = parse_event(12345)  # type: ignore[arg-type]
    assert parsed.status == "invalid"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"enrollment_id": "abc", "course_id": "1"}, "body.enrollment_id is not a Canvas id: 'abc'"),
        ({"enrollment_id": "1", "course_id": "12x"}, "body.course_id is not a Canvas id: '12x'"),
        ({"enrollment_id": "1", "user_id": True}, "body.user_id is not a Canvas id: True"),
        ({"course_id": "565"}, "body.enrollment_id is missing"),
    ],
)
def test_unparseable_or_missing_ids_make_a_roster_event_invalid(body: dict[str, Any], reason: str) -> None:
    parsed = parse_event(canvas_event("enrollment_updated", body))
    assert (parsed.status, parsed.reason) == ("invalid", reason)


def test_unparseable_context_ids_are_dropped_with_a_warning_not_fatal() -> None:
    parsed = parse_event(
        canvas_event("user_created", {"user_id": "5"}, user_id="admin", context_type="Course", context_id="x")
    )
    assert parsed.status == "ok"
    assert parsed.event is not None and parsed.event.actor_user_id is None and parsed.event.context_id is None
    assert parsed.warnings == (
        "metadata.user_id is not a Canvas id, ignored: 'admin'",
        "metadata.context_id is not a Canvas id, ignored: 'x'",
    )


def test_an_unparseable_root_account_id_is_invalid() -> None:
    parsed = parse_event(canvas_event("user_created", {"user_id": "5"}, root_account_id="root"))
    assert (parsed.status, parsed.reason) == (
        "invalid",
        "metadata.root_account_id is not a Canvas id: 'root'",
    )


def test_a_missing_or_broken_event_time_makes_a_roster_event_invalid() -> None:
    broken = canvas_event("user_created", {"user_id": "5"}, event_time="019-11-01T19:11:01.163Z")
    assert parse_event(broken).reason == "metadata.event_time is not a timestamp: '019-11-01T19:11:01.163Z'"
    missing = canvas_event("user_created", {"user_id": "5"})
    del missing["metadata"]["event_time"]
    assert parse_event(missing).reason == "metadata.event_time is missing"


def test_an_ignored_event_with_a_broken_envelope_stays_ignored() -> None:
    parsed = parse_event(canvas_event("wiki_page_created", {}, event_time="soon"))
    assert parsed.status == "ignored" and parsed.event is None
    assert parsed.warnings == ("envelope unusable: metadata.event_time is not a timestamp: 'soon'",)


def test_caliper_urn_of_the_wrong_type_is_invalid() -> None:
    document = load("caliper/enrollment_created.json")
    document["data"][0]["object"]["extensions"]["com.instructure.canvas"]["user_id"] = (
        "urn:instructure:canvas:course:21070000000000565"
    )
    parsed = parse_event(document)
    assert parsed.status == "invalid"
    assert parsed.reason is not None and parsed.reason.startswith(
        "data[0].object.extensions.user_id is not a Canvas user id"
    )
