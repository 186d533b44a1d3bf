"""The delivery API's reads, for one tenant (the caller's client names it): its courses, a course's roster
as the export shows it, a user's enrollments, and the change feed from a cursor.

Cursors are opaque to clients: a course cursor names the last course of a page; a change's cursor is its
position in the tenant's feed (sequence of its commit, index in the commit, and the commit's size, so the
position right after it is known without reading the commit again). A change's cursor is also its id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from rostersync.models import (
    ApiClient,
    Change,
    ChangePage,
    ChangeType,
    CourseListing,
    CoursePage,
    ExportedCourse,
    RosterCourse,
    UserEnrollment,
    UserEnrollments,
)
from rostersync.store.feed import StoredChange
from rostersync.store.rosters import CourseRow
from rostersync.store.table import RosterTable
from rostersync.sync.reports import exported_course

COURSE_PAGE_SIZE = 100
DEFAULT_CHANGE_PAGE = 100
MAX_CHANGE_PAGE = 500
_COURSE_CURSOR = "c1"
_FEED_CURSOR = "f1"


class CursorError(ValueError):
    """A cursor this API did not issue, or a limit out of range: the request is refused (400)."""


class UnknownCourseError(LookupError):
    """No such course for the caller's tenant (another tenant's course reads the same: 404)."""


class UnknownClientError(LookupError):
    """The token's client is not (or no longer) a client of any tenant (401)."""


class FeedExpiredError(Exception):
    """The cursor points before what the feed still keeps (410): read the rosters again, then follow the
    feed from `resync_cursor`, the feed's position now."""

    def __init__(self, resync_cursor: str) -> None:
        super().__init__(
            "the feed no longer holds the changes after this cursor (kept for a limited time): read the "
            "courses' rosters again, then follow /v1/changes from the cursor given here"
        )
        self.resync_cursor = resync_cursor


@dataclass(frozen=True)
class FeedPosition:
    """Right after change `index` of commit `sequence`, which holds `count` changes."""

    sequence: int
    index: int
    count: int

    @property
    def next_start(self) -> tuple[int, int]:
        """(sequence, index) of the change that follows."""
        return (self.sequence + 1, 0) if self.index + 1 >= self.count else (self.sequence, self.index + 1)


def _encode(*parts: object) -> str:
    return base64.urlsafe_b64encode(".".join(str(part) for part in parts).encode()).decode().rstrip("=")


def _decode(cursor: str, kind: str, size: int) -> list[int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError("malformed cursor") from None
    parts = text.split(".")
    if (
        len(parts) != size + 1
        or parts[0] != kind
        or not all(part.isdigit() and len(part) <= 15 for part in parts[1:])
    ):
        raise CursorError("malformed cursor")
    return [int(part) for part in parts[1:]]


def feed_cursor(position: FeedPosition) -> str:
    return _encode(_FEED_CURSOR, position.sequence, position.index, position.count)


def parse_feed_cursor(cursor: str) -> FeedPosition:
    sequence, index, count = _decode(cursor, _FEED_CURSOR, 3)
    if index >= count:
        raise CursorError("malformed cursor")
    return FeedPosition(sequence, index, count)


def change_cursor(change: StoredChange) -> str:
    return feed_cursor(FeedPosition(change.entry.sequence, change.index, change.entry.count))


def client_tenant(table: RosterTable, client_id: str) -> str:
    client: ApiClient | None = table.api_client(client_id) if client_id else None
    if client is None:
        raise UnknownClientError("this client is not registered (or was removed)")
    return client.tenant_id


# -- courses and rosters -----------------------------------------------------------------------
def _listed(row: CourseRow) -> bool:
    return row.course is not None and row.out_of_scope is None


def list_courses(table: RosterTable, tenant_id: str, cursor: str | None) -> CoursePage:
    after = _decode(cursor, _COURSE_CURSOR, 1)[0] if cursor else None
    rows, last = table.course_rows_page(tenant_id, after, COURSE_PAGE_SIZE)
    items = []
    for row in rows:
        if _listed(row):
            assert row.course is not None
            course = RosterCourse.model_validate_json(row.course.data)
            items.append(CourseListing(**course.model_dump(), synced_at=row.synced_at))
    return CoursePage(items=items, next=_encode(_COURSE_CURSOR, last) if last is not None else None)


def roster_etag(row: CourseRow) -> str:
    """Changes exactly when the course's exported roster can: its items' digest and the course itself."""
    assert row.course is not None
    seed = f"{row.roster_digest}\n{row.course.content_hash}"
    return '"' + hashlib.sha256(seed.encode()).hexdigest()[:32] + '"'


def course_roster(
    table: RosterTable, tenant_id: str, course_id: int, if_none_match: str | None = None
) -> tuple[str, ExportedCourse | None]:
    """(ETag, the course as `roster export` shows it), or (ETag, None) when `if_none_match` names the
    current roster. Three DynamoDB requests: the course row, its roster, its generation again."""
    for _ in range(5):
        row = table.course_row(tenant_id, course_id)
        if row is None or not _listed(row):
            raise UnknownCourseError(f"no course {course_id}")
        assert row.course is not None
        etag = roster_etag(row)
        if if_none_match is not None and etag in {tag.strip() for tag in if_none_match.split(",")}:
            return etag, None
        items = table.course_items_at(tenant_id, course_id, row.generation)
        if items is not None:
            course = RosterCourse.model_validate_json(row.course.data)
            return etag, ExportedCourse.model_validate(exported_course(course, items))
    raise RuntimeError(f"course {course_id} kept changing while it was read")


def user_enrollments(table: RosterTable, tenant_id: str, user_id: int) -> UserEnrollments:
    """The user's enrollments in the tenant's listed courses, as each roster shows them."""
    items: list[UserEnrollment] = []
    for course_id in sorted(table.courses_of_user(tenant_id, user_id)):
        try:
            _, roster = course_roster(table, tenant_id, course_id)
        except UnknownCourseError:
            continue
        assert roster is not None
        items.extend(
            UserEnrollment(**enrollment.model_dump(), course_id=course_id)
            for enrollment in roster.enrollments
            if enrollment.user_id == user_id
        )
    return UserEnrollments(items=items)


# -- the change feed ---------------------------------------------------------------------------
def _head_cursor(table: RosterTable, tenant_id: str) -> str:
    head = table.feed_head(tenant_id)
    entry = table.feed_entry(tenant_id, head) if head else None
    return feed_cursor(FeedPosition(head, entry.count - 1, entry.count) if entry else FeedPosition(0, 0, 1))


def as_change(change: StoredChange) -> Change:
    data: dict[str, Any] = json.loads(change.data)
    return Change(
        cursor=change_cursor(change),
        type=ChangeType(change.type),
        course_id=change.entry.course_id,
        occurred_at=change.entry.occurred_at,
        data=data,
    )


def changes_after(table: RosterTable, tenant_id: str, after: str | None, limit: int | None) -> ChangePage:
    """Up to `limit` changes after the cursor `after` (from the feed's start without one), in order;
    `next` is the last one's cursor when more follow now, else null (keep the last cursor to poll)."""
    wanted = DEFAULT_CHANGE_PAGE if limit is None else limit
    if not 1 <= wanted <= MAX_CHANGE_PAGE:
        raise CursorError(f"limit must be between 1 and {MAX_CHANGE_PAGE}")
    start_sequence, start_index = parse_feed_cursor(after).next_start if after else (1, 0)
    entries = table.feed_entries(tenant_id, start_sequence, page_size=min(wanted + 1, 100))
    items: list[Change] = []
    more = False
    first = True
    for entry in entries:
        if first and after and entry.sequence != start_sequence:
            raise FeedExpiredError(_head_cursor(table, tenant_id))  # what followed the cursor expired
        index = start_index if first else 0
        first = False
        if len(items) == wanted:
            more = True
            break
        taken = table.entry_changes(tenant_id, entry, index, wanted - len(items))
        items.extend(as_change(change) for change in taken)
        if index + len(taken) < entry.count:
            more = True
            break
    if first and after and table.feed_head(tenant_id) >= start_sequence:
        raise FeedExpiredError(_head_cursor(table, tenant_id))  # every entry after the cursor expired
    return ChangePage(items=items, next=items[-1].cursor if more and items else None)
