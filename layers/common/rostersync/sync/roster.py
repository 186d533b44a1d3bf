"""What a course's roster is, built from what Canvas returned, and how it differs from what is stored.

Pure functions: no Canvas, no DynamoDB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel

from rostersync.canvas.models import CanvasCourse, CanvasEnrollment, CanvasSection, CanvasUser
from rostersync.models import ChangeCounts, RosterCourse, RosterEnrollment, RosterSection, RosterUser
from rostersync.store.table import StoredItem

# Asked for explicitly: Canvas's default differs between teachers and admins.
SYNCED_ENROLLMENT_STATES = ("active", "invited", "inactive", "completed")
# The test student and observers never belong on an exam roster.
EXCLUDED_ENROLLMENT_TYPES = frozenset({"StudentViewEnrollment", "ObserverEnrollment"})
DROPPED_NOT_IN_CANVAS = "not_in_canvas"

SECTION_PREFIX = "SECTION#"
USER_PREFIX = "USER#"
ENROLLMENT_PREFIX = "ENROLLMENT#"


@dataclass(frozen=True)
class CourseRoster:
    course: RosterCourse
    sections: list[RosterSection]
    users: list[RosterUser]
    enrollments: list[RosterEnrollment]


def build_course_roster(
    course: CanvasCourse,
    sections: Iterable[CanvasSection],
    enrollments: Iterable[CanvasEnrollment],
    users: Iterable[CanvasUser] = (),
) -> CourseRoster:
    kept = [
        enrollment
        for enrollment in enrollments
        if enrollment.type not in EXCLUDED_ENROLLMENT_TYPES and enrollment.course_id == course.id
    ]
    listed_users = {user.id: user for user in users}
    roster_users: dict[int, RosterUser] = {}
    for enrollment in kept:
        embedded = enrollment.user or CanvasUser(id=enrollment.user_id, name="")
        listed = listed_users.get(enrollment.user_id)
        roster_users.setdefault(
            enrollment.user_id,
            RosterUser(
                canvas_id=enrollment.user_id,
                name=embedded.name or (listed.name if listed else ""),
                sortable_name=embedded.sortable_name or (listed.sortable_name if listed else None),
                sis_user_id=embedded.sis_user_id or (listed.sis_user_id if listed else None),
                login_id=embedded.login_id or (listed.login_id if listed else None),
                email=listed.email if listed else embedded.email,
            ),
        )
    return CourseRoster(
        course=RosterCourse(
            canvas_id=course.id,
            sis_course_id=course.sis_course_id,
            name=course.real_name,
            workflow_state=course.workflow_state,
        ),
        sections=sorted(
            (
                RosterSection(
                    canvas_id=section.id,
                    name=section.name,
                    sis_section_id=section.sis_section_id,
                    nonxlist_course_id=section.nonxlist_course_id,
                )
                for section in sections
                if section.course_id == course.id
            ),
            key=lambda section: section.canvas_id,
        ),
        users=sorted(roster_users.values(), key=lambda user: user.canvas_id),
        enrollments=sorted(
            (
                RosterEnrollment(
                    canvas_id=enrollment.id,
                    user_id=enrollment.user_id,
                    section_id=enrollment.course_section_id,
                    type=enrollment.type,
                    role=enrollment.role,
                    role_id=enrollment.role_id,
                    state=enrollment.enrollment_state,
                    active=enrollment.enrollment_state == "active",
                )
                for enrollment in kept
            ),
            key=lambda enrollment: enrollment.canvas_id,
        ),
    )


def stored_item(sk: str, model: BaseModel) -> StoredItem:
    data = model.model_dump_json()
    return StoredItem(sk=sk, data=data, content_hash=hashlib.sha256(data.encode()).hexdigest())


def course_item(course: RosterCourse) -> StoredItem:
    return stored_item(f"COURSE#{course.canvas_id}", course)


def roster_items(roster: CourseRoster) -> dict[str, StoredItem]:
    items = [
        *(stored_item(f"{SECTION_PREFIX}{section.canvas_id}", section) for section in roster.sections),
        *(stored_item(f"{USER_PREFIX}{user.canvas_id}", user) for user in roster.users),
        *(
            stored_item(f"{ENROLLMENT_PREFIX}{enrollment.canvas_id}", enrollment)
            for enrollment in roster.enrollments
        ),
    ]
    return {item.sk: item for item in items}


@dataclass
class RosterChanges:
    puts: list[StoredItem] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    counts: ChangeCounts = field(default_factory=ChangeCounts)


def diff_roster(
    stored: Mapping[str, StoredItem], desired: Mapping[str, StoredItem], now: datetime
) -> RosterChanges:
    """Only what changed is written. Enrollments that left Canvas are kept, marked inactive with a reason.

    Users stay while any kept enrollment (dropped ones too) names them; sections that left are removed.
    """
    changes = RosterChanges()
    for sk, item in desired.items():
        previous = stored.get(sk)
        if previous is None:
            changes.puts.append(item)
            changes.counts.created += 1
        elif previous.content_hash != item.content_hash:
            changes.puts.append(item)
            changes.counts.updated += 1
        else:
            changes.counts.unchanged += 1
    for sk, previous in stored.items():
        if sk in desired:
            continue
        if sk.startswith(ENROLLMENT_PREFIX):
            enrollment = RosterEnrollment.model_validate_json(previous.data)
            if enrollment.dropped_reason is None:
                dropped = enrollment.model_copy(
                    update={"active": False, "dropped_reason": DROPPED_NOT_IN_CANVAS, "dropped_at": now}
                )
                changes.puts.append(stored_item(sk, dropped))
                changes.counts.dropped += 1
            else:
                changes.counts.unchanged += 1
        elif sk.startswith(SECTION_PREFIX):
            changes.deletes.append(sk)
            changes.counts.dropped += 1
        else:
            changes.counts.unchanged += 1
    return changes
