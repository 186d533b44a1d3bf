"""The change feed: what a commit puts in it (the export's view before and after), that it is committed
with the roster, and reading it from a cursor (moto in-process)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from rostersync.canvas.models import CanvasCourse, CanvasSection
from rostersync.delivery.changes import roster_changes
from rostersync.delivery.publishing import event_schema
from rostersync.delivery.reading import (
    MAX_CHANGE_PAGE,
    CursorError,
    FeedExpiredError,
    changes_after,
    course_roster,
)
from rostersync.models import ChangeType
from rostersync.store.keys import FEED_SK, feed_entry_sk, feed_pk, tenant_pk
from rostersync.store.rosters import CourseWriteConflictError, StoredItem
from rostersync.store.table import RosterTable
from rostersync.sync.roster import build_course_roster, course_item, diff_roster, roster_items
from tests.unit.test_roster import NOW, enrollment

TENANT = "t1"
SECTION = CanvasSection(id=1001, name="A", course_id=101)


def canvas_course(course_id: int) -> CanvasCourse:
    return CanvasCourse(id=course_id, name=f"Course {course_id}", workflow_state="available")


def roster(
    course_id: int, *enrollments: Any, sections: list[CanvasSection] | None = None
) -> dict[str, StoredItem]:
    sections = [SECTION.model_copy(update={"course_id": course_id})] if sections is None else sections
    of_course = [e.model_copy(update={"course_id": course_id}) for e in enrollments]
    return roster_items(build_course_roster(canvas_course(course_id), sections, of_course))


def sync(table: RosterTable, course_id: int, desired: dict[str, StoredItem]) -> None:
    """What apply_roster does, without Canvas: diff against the stored roster and commit."""
    stored, generation = table.course_snapshot(TENANT, course_id)
    changes = diff_roster(stored, desired, NOW)
    course = course_item(build_course_roster(canvas_course(course_id), [], []).course)
    row = table.course_row(TENANT, course_id)
    table.write_course(
        TENANT,
        course_id,
        course if row is None or row.course != course else None,
        changes.puts,
        changes.deletes,
        expected_generation=generation,
        expected_items=stored,
        describe_changes=roster_changes,
    )


def kinds(table: RosterTable) -> list[tuple[str, int]]:
    return [(change.type.value, change.course_id) for change in changes_after(table, TENANT, None, 500).items]


def test_the_changes_of_a_commit_are_what_a_reader_of_the_roster_sees_change() -> None:
    before = roster(
        101, enrollment(1, 11), enrollment(2, 12), enrollment(3, 13, user={"id": 13, "name": "User 13"})
    )
    other_section = CanvasSection(id=1002, name="B", course_id=101)
    after = roster(
        101,
        enrollment(2, 12, enrollment_state="completed"),
        enrollment(4, 14),
        sections=[SECTION.model_copy(update={"name": "A renamed"}), other_section],
    )
    # Enrollment 1 left Canvas: the diff keeps it, dropped. Enrollment 3's user has no SIS id: never shown.
    changes = diff_roster(before, after, NOW)
    stored_after = {**before, **{item.sk: item for item in changes.puts}}
    for sk in changes.deletes:
        stored_after.pop(sk)
    described = roster_changes(
        before, stored_after, course_item(build_course_roster(canvas_course(101), [], []).course)
    )
    found = [(change.type, json.loads(change.data)) for change in described]
    assert [(kind, data["canvas_id"]) for kind, data in found] == [
        ("section.updated", 1001),
        ("section.added", 1002),
        ("enrollment.dropped", 1),
        ("enrollment.updated", 2),
        ("enrollment.added", 4),
        ("course.synced", 101),
    ]
    dropped = found[2][1]
    assert (
        dropped["active"] is False
        and dropped["state"] == "dropped"
        and dropped["dropped_reason"] == "not_in_canvas"
    )
    assert found[3][1]["state"] == "completed"


def test_a_user_who_can_no_longer_be_identified_drops_from_the_feed_and_comes_back_added() -> None:
    shown = roster(101, enrollment(1, 11))
    hidden = roster(101, enrollment(1, 11, user={"id": 11, "name": "User 11"}))  # no SIS id now
    assert [c.type for c in roster_changes(shown, hidden, None)] == ["enrollment.dropped"]
    assert json.loads(roster_changes(shown, hidden, None)[0].data)["active"] is False
    assert [c.type for c in roster_changes(hidden, shown, None)] == ["enrollment.added"]


def test_the_feed_is_committed_with_the_roster_and_an_unchanged_sync_adds_nothing(table: RosterTable) -> None:
    sync(table, 101, roster(101, enrollment(1, 11), enrollment(2, 12)))
    sync(table, 102, roster(102, enrollment(5, 15)))
    sync(table, 101, roster(101, enrollment(1, 11), enrollment(2, 12)))  # unchanged: no commit, no entry
    sync(table, 101, roster(101, enrollment(1, 11)))
    assert kinds(table) == [
        ("section.added", 101), ("enrollment.added", 101), ("enrollment.added", 101), ("course.synced", 101),
        ("section.added", 102), ("enrollment.added", 102), ("course.synced", 102),
        ("enrollment.dropped", 101), ("course.synced", 101),
    ]  # fmt: skip
    assert table.feed_head(TENANT) == 3
    row = table.course_row(TENANT, 101)
    assert row is not None and row.synced_at is not None


def test_pages_follow_each_other_through_commits_without_gaps_or_repeats(table: RosterTable) -> None:
    for course_id in (101, 102, 103):
        sync(table, course_id, roster(course_id, *(enrollment(course_id * 10 + n, n) for n in range(3))))
    everything = changes_after(table, TENANT, None, 500)
    assert len(everything.items) == 15 and everything.next is None
    seen, after = [], None
    while True:
        page = changes_after(table, TENANT, after, 4)
        seen.extend(page.items)
        if page.next is None:
            break
        assert page.next == page.items[-1].cursor
        after = page.next
    assert seen == everything.items
    assert len({change.cursor for change in seen}) == 15
    # Polling from the last change's cursor finds nothing new, then exactly what the next commit adds.
    last = everything.items[-1].cursor
    assert changes_after(table, TENANT, last, 10).items == []
    sync(table, 101, roster(101))
    assert [c.type.value for c in changes_after(table, TENANT, last, 10).items][-1] == "course.synced"


@pytest.mark.parametrize("cursor", ["", "not-a-cursor", "ZjEuMS4w", "YzEuNQ", "ZjEuMS41LjM", "ZjEuLTEuMC4x"])
def test_a_malformed_cursor_is_refused(table: RosterTable, cursor: str) -> None:
    # ZjEuMS4w: "f1.1.0" (a part missing); YzEuNQ: a course cursor; ZjEuMS41LjM: index past the count;
    # ZjEuLTEuMC4x: a negative sequence.
    with pytest.raises(CursorError):
        changes_after(table, TENANT, cursor or "%%", 10)


@pytest.mark.parametrize("limit", [0, MAX_CHANGE_PAGE + 1])
def test_a_limit_out_of_range_is_refused(table: RosterTable, limit: int) -> None:
    with pytest.raises(CursorError):
        changes_after(table, TENANT, None, limit)


def test_a_cursor_older_than_the_retention_is_gone_with_a_cursor_to_resync_from(table: RosterTable) -> None:
    for course_id in (101, 102, 103):
        sync(table, course_id, roster(course_id, enrollment(course_id, 1)))
    first_entry_end = changes_after(table, TENANT, None, 3).items[-1].cursor  # the end of commit 1
    second_entry = changes_after(table, TENANT, first_entry_end, 1).items[0].cursor
    # Commit 2 reaches its expiry (TTL deletes late: an expired entry counts as gone before it is deleted).
    table._table.update_item(
        Key={"pk": feed_pk(TENANT), "sk": feed_entry_sk(2)},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": int(time.time()) - 1},
    )
    with pytest.raises(FeedExpiredError) as gone:
        changes_after(table, TENANT, first_entry_end, 10)
    with pytest.raises(FeedExpiredError):
        changes_after(table, TENANT, second_entry, 10)  # inside the expired commit
    resumed = changes_after(table, TENANT, gone.value.resync_cursor, 10)
    assert resumed.items == []  # the resync cursor is the feed's head: only what comes after it
    sync(table, 101, roster(101))
    assert [c.course_id for c in changes_after(table, TENANT, gone.value.resync_cursor, 10).items] == [
        101,
        101,
    ]
    # Without a cursor the feed starts at what it still keeps.
    assert changes_after(table, TENANT, None, 500).items[0].course_id == 101


def test_a_writer_that_loses_its_lease_commits_neither_roster_nor_feed(table: RosterTable) -> None:
    sync(table, 101, roster(101, enrollment(1, 11)))
    original_claim = table._claim_course

    def claim_then_lose(*arguments: Any) -> Any:
        claimed = original_claim(*arguments)
        table._table.update_item(
            Key={"pk": tenant_pk(TENANT), "sk": "COURSE#101"},
            UpdateExpression="SET lease_holder = :other",
            ExpressionAttributeValues={":other": "someone else"},
        )
        return claimed

    table._claim_course = claim_then_lose  # type: ignore[method-assign, assignment]
    with pytest.raises(CourseWriteConflictError):
        sync(table, 101, roster(101, enrollment(1, 11), enrollment(2, 12)))
    assert table.feed_head(TENANT) == 1
    assert [kind for kind, _ in kinds(table)] == ["section.added", "enrollment.added", "course.synced"]
    _, course = course_roster(table, TENANT, 101)
    assert course is not None and [e.canvas_id for e in course.enrollments] == [1]


def test_a_roster_is_read_in_three_dynamodb_requests_and_a_304_in_one(table: RosterTable) -> None:
    sync(table, 101, roster(101, *(enrollment(n, 1000 + n) for n in range(1, 501))))
    requests: list[str] = []
    table._table.meta.client.meta.events.register(
        "before-send.dynamodb.*",
        lambda request, **_: requests.append(request.headers["X-Amz-Target"].decode()),
    )
    etag, course = course_roster(table, TENANT, 101)
    assert course is not None and len(course.enrollments) == 500
    assert [target.split(".")[1] for target in requests] == ["GetItem", "Query", "GetItem"]
    requests.clear()
    assert course_roster(table, TENANT, 101, etag) == (etag, None)
    assert len(requests) == 1


def test_the_event_schemas_under_events_are_the_models_contract() -> None:
    # events/schemas/<type>.json are generated from the models the feed publishes; consumers read them.
    folder = Path(__file__).resolve().parents[2] / "events" / "schemas"
    assert {path.stem for path in folder.glob("*.json")} == {kind.value for kind in ChangeType}
    for kind in ChangeType:
        assert json.loads((folder / f"{kind.value}.json").read_text()) == event_schema(kind), kind.value


def test_a_commit_with_a_stale_counter_retries_with_the_value_it_was_refused_with(table: RosterTable) -> None:
    # Two workers: the other commits between this one's commits, so this one's counter goes stale.
    other = RosterTable("roster", table._resource)
    sync(table, 101, roster(101, enrollment(1, 11)))
    sync(other, 102, roster(102, enrollment(2, 12)))
    counter_reads: list[dict[str, Any]] = []

    def count_counter_reads(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == {"pk": tenant_pk(TENANT), "sk": FEED_SK}:
            counter_reads.append(params)

    table._table.meta.client.meta.events.register(
        "provide-client-params.dynamodb.GetItem", count_counter_reads
    )
    sync(table, 103, roster(103, enrollment(3, 13)))
    assert counter_reads == []  # the refused transaction said where the counter stands
    assert table.feed_head(TENANT) == 3
    assert [course for kind, course in kinds(table) if kind == "course.synced"] == [101, 102, 103]
