"""What a course commit changes, as the feed tells it: the difference between the roster a reader saw
before and sees after (the export's view: users that cannot be identified, and their enrollments, are
not shown). Pure functions: no DynamoDB."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rostersync.models import ChangeType, RosterCourse, RosterEnrollment, RosterSection, RosterUser
from rostersync.store.feed import FeedChange
from rostersync.store.keys import ENROLLMENT_PREFIX, SECTION_PREFIX, USER_PREFIX
from rostersync.store.rosters import StoredItem
from rostersync.sync.reports import DROPPED_STATE, exported_enrollment


def _sections(items: Mapping[str, StoredItem]) -> dict[int, dict[str, Any]]:
    sections = (
        RosterSection.model_validate_json(item.data)
        for sk, item in items.items()
        if sk.startswith(SECTION_PREFIX)
    )
    return {section.canvas_id: section.model_dump(mode="json") for section in sections}


def _enrollments(items: Mapping[str, StoredItem]) -> dict[int, dict[str, Any]]:
    """The enrollments the export shows: those of identified users."""
    identified = set()
    for sk, item in items.items():
        if sk.startswith(USER_PREFIX):
            user = RosterUser.model_validate_json(item.data)
            if user.sync_error is None:
                identified.add(user.canvas_id)
    enrollments = (
        RosterEnrollment.model_validate_json(item.data)
        for sk, item in items.items()
        if sk.startswith(ENROLLMENT_PREFIX)
    )
    return {e.canvas_id: exported_enrollment(e) for e in enrollments if e.user_id in identified}


def _change(kind: ChangeType, data: dict[str, Any]) -> FeedChange:
    return FeedChange(kind.value, json.dumps(data, sort_keys=True))


def roster_changes(
    before: Mapping[str, StoredItem], after: Mapping[str, StoredItem], course: StoredItem | None
) -> list[FeedChange]:
    """The feed's changes for one commit: sections and enrollments in id order, then `course.synced`
    (every commit has one: a user's rename changes the roster without changing an enrollment)."""
    changes: list[FeedChange] = []
    sections_before, sections_after = _sections(before), _sections(after)
    for section_id in sorted(sections_after):
        section, previous = sections_after[section_id], sections_before.get(section_id)
        if previous is None:
            changes.append(_change(ChangeType.SECTION_ADDED, section))
        elif previous != section:
            changes.append(_change(ChangeType.SECTION_UPDATED, section))
    enrollments_before, enrollments_after = _enrollments(before), _enrollments(after)
    for enrollment_id in sorted(enrollments_before.keys() | enrollments_after.keys()):
        enrollment, previous = enrollments_after.get(enrollment_id), enrollments_before.get(enrollment_id)
        if enrollment is None:  # no longer shown (its user can no longer be identified): gone for a reader
            assert previous is not None
            changes.append(_change(ChangeType.ENROLLMENT_DROPPED, {**previous, "active": False}))
        elif previous is None:
            changes.append(_change(ChangeType.ENROLLMENT_ADDED, enrollment))
        elif previous != enrollment:
            dropped = enrollment["state"] == DROPPED_STATE and previous["state"] != DROPPED_STATE
            kind = ChangeType.ENROLLMENT_DROPPED if dropped else ChangeType.ENROLLMENT_UPDATED
            changes.append(_change(kind, enrollment))
    for section_id in sorted(sections_before.keys() - sections_after.keys()):
        changes.append(_change(ChangeType.SECTION_REMOVED, sections_before[section_id]))
    if course is not None:
        changes.append(
            _change(
                ChangeType.COURSE_SYNCED,
                RosterCourse.model_validate_json(course.data).model_dump(mode="json"),
            )
        )
    return changes
