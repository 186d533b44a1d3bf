"""What a course's roster is, built from what Canvas returned, and how it differs from what is stored.

Pure functions: no Canvas, no DynamoDB.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel

from rostersync.canvas.models import CanvasCourse, CanvasEnrollment, CanvasSection, CanvasUser
from rostersync.models import (
    ChangeCounts,
    HeldDrop,
    RosterCourse,
    RosterEnrollment,
    RosterRole,
    RosterSection,
    RosterUser,
    SyncErrorCode,
    TenantSettings,
    UserIdField,
)
from rostersync.store.keys import ENROLLMENT_PREFIX, SECTION_PREFIX, USER_PREFIX
from rostersync.store.rosters import StoredItem

# Asked for explicitly: Canvas's default differs between teachers and admins.
SYNCED_ENROLLMENT_STATES = ("active", "invited", "inactive", "completed")
# Why a stored enrollment was dropped: Canvas no longer lists it, or the tenant's role mapping now
# excludes its role (Canvas still lists it).
DROPPED_NOT_IN_CANVAS = "not_in_canvas"
DROPPED_ROLE_EXCLUDED = "role_excluded"


@dataclass(frozen=True)
class UserProblem:
    user_id: int
    code: SyncErrorCode
    message: str


@dataclass(frozen=True)
class CourseRoster:
    course: RosterCourse
    sections: list[RosterSection]
    users: list[RosterUser]
    enrollments: list[RosterEnrollment]
    problems: list[UserProblem] = field(default_factory=list)
    # Enrollments Canvas listed that the role mapping leaves out (observers, the test student, ...).
    excluded_enrollment_ids: frozenset[int] = frozenset()


# What a Canvas admin can do about each user problem, said in the error itself.
WHAT_TO_DO = {
    SyncErrorCode.MISSING_IDENTIFIER: "set it in Canvas (Admin > People, or the SIS import), or identify "
    "users by another field in the sync settings",
    SyncErrorCode.EMAIL_HIDDEN: "add an email in Canvas, or let the authorizing admin see users' emails "
    "(the account role's 'Users - view primary email address'), or identify users by another field",
    SyncErrorCode.DUPLICATE_IDENTIFIER: "give each user their own value in Canvas, or identify users by "
    "another field",
}


def user_identifier(user: RosterUser, field_name: UserIdField) -> str | None:
    value = user.canvas_id if field_name is UserIdField.CANVAS_ID else getattr(user, field_name.value)
    return None if value in (None, "") else str(value).strip().lower()


def identify_users(
    users: list[RosterUser], field_name: UserIdField
) -> tuple[list[RosterUser], list[UserProblem]]:
    """Mark users that cannot be told apart downstream: no identifier, or one shared with another user."""
    holders: dict[str, list[int]] = defaultdict(list)
    for user in users:
        identifier = user_identifier(user, field_name)
        if identifier is not None:
            holders[identifier].append(user.canvas_id)
    problems: list[UserProblem] = []
    marked: list[RosterUser] = []
    for user in users:
        identifier = user_identifier(user, field_name)
        problem: UserProblem | None = None
        if identifier is None:
            code = (
                SyncErrorCode.EMAIL_HIDDEN
                if field_name is UserIdField.EMAIL
                else SyncErrorCode.MISSING_IDENTIFIER
            )
            # The name comes from Canvas: quoted, and never at the start (a CSV cell could run it).
            named = f" ({user.name!r})" if user.name else ""
            problem = UserProblem(
                user.canvas_id,
                code,
                f"user {user.canvas_id}{named} has no {field_name.value}: {WHAT_TO_DO[code]}",
            )
        elif len(holders[identifier]) > 1:
            others = ", ".join(str(other) for other in holders[identifier] if other != user.canvas_id)
            problem = UserProblem(
                user.canvas_id,
                SyncErrorCode.DUPLICATE_IDENTIFIER,
                f"{field_name.value} {identifier!r} of user {user.canvas_id} is also user {others}'s: "
                f"{WHAT_TO_DO[SyncErrorCode.DUPLICATE_IDENTIFIER]}",
            )
        if problem is not None:
            problems.append(problem)
        marked.append(user.model_copy(update={"sync_error": problem.code.value if problem else None}))
    return marked, problems


def build_course_roster(
    course: CanvasCourse,
    sections: Iterable[CanvasSection],
    enrollments: Iterable[CanvasEnrollment],
    users: Iterable[CanvasUser] = (),
    settings: TenantSettings | None = None,
) -> CourseRoster:
    settings = settings or TenantSettings()
    of_course = [enrollment for enrollment in enrollments if enrollment.course_id == course.id]
    roles = [(enrollment, settings.roster_role(enrollment.type, enrollment.role)) for enrollment in of_course]
    kept = [(enrollment, role) for enrollment, role in roles if role is not RosterRole.EXCLUDED]
    excluded = frozenset(enrollment.id for enrollment, role in roles if role is RosterRole.EXCLUDED)
    listed_users = {user.id: user for user in users}
    roster_users: dict[int, RosterUser] = {}
    for enrollment, _ in kept:
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
    identified, problems = identify_users(
        sorted(roster_users.values(), key=lambda user: user.canvas_id), settings.user_id_field
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
        users=identified,
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
                    roster_role=role,
                )
                for enrollment, role in kept
            ),
            key=lambda enrollment: enrollment.canvas_id,
        ),
        problems=problems,
        excluded_enrollment_ids=excluded,
    )


def excluded_keys(roster: CourseRoster) -> set[str]:
    """The sort keys of the enrollments the role mapping leaves out."""
    return {f"{ENROLLMENT_PREFIX}{enrollment_id}" for enrollment_id in roster.excluded_enrollment_ids}


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
    # Enrollments active before and not after (left Canvas, or turned inactive/completed), by sort key.
    deactivated: dict[str, RosterRole] = field(default_factory=dict)
    vanished: set[str] = field(default_factory=set)  # enrollments no longer in Canvas at all
    active_before: int = 0


def diff_roster(
    stored: Mapping[str, StoredItem],
    desired: Mapping[str, StoredItem],
    now: datetime,
    excluded: Set[str] = frozenset(),
) -> RosterChanges:
    """Only what changed is written. Enrollments that left Canvas, or that the role mapping now excludes
    (`excluded`: sort keys Canvas still lists), are kept, marked inactive with a reason and a time.

    Users stay while any kept enrollment (dropped ones too) names them; sections that left are removed.
    """
    changes = RosterChanges()
    previous_enrollments = {
        sk: RosterEnrollment.model_validate_json(item.data)
        for sk, item in stored.items()
        if sk.startswith(ENROLLMENT_PREFIX)
    }
    changes.active_before = sum(enrollment.active for enrollment in previous_enrollments.values())
    for sk, item in desired.items():
        previous = stored.get(sk)
        if previous is None:
            changes.puts.append(item)
            changes.counts.created += 1
        elif previous.content_hash != item.content_hash:
            changes.puts.append(item)
            changes.counts.updated += 1
            before = previous_enrollments.get(sk)
            if (
                before is not None
                and before.active
                and not RosterEnrollment.model_validate_json(item.data).active
            ):
                changes.deactivated[sk] = before.roster_role
        else:
            changes.counts.unchanged += 1
    for sk in stored:
        if sk in desired:
            continue
        if sk in previous_enrollments:
            enrollment = previous_enrollments[sk]
            if enrollment.dropped_reason is None:
                reason = DROPPED_ROLE_EXCLUDED if sk in excluded else DROPPED_NOT_IN_CANVAS
                dropped = enrollment.model_copy(
                    update={"active": False, "dropped_reason": reason, "dropped_at": now}
                )
                changes.puts.append(stored_item(sk, dropped))
                changes.counts.dropped += 1
                changes.vanished.add(sk)
                if enrollment.active:
                    changes.deactivated[sk] = enrollment.roster_role
            else:
                changes.counts.unchanged += 1
        elif sk.startswith(SECTION_PREFIX):
            changes.deletes.append(sk)
            changes.counts.dropped += 1
        else:
            changes.counts.unchanged += 1
    return changes


@dataclass(frozen=True)
class MassDrop:
    """Student drops held back for an admin's decision; everything else of the sync goes ahead."""

    held_puts: list[StoredItem]
    held_deletes: list[str]
    student_drops: int
    active_before: int

    @property
    def fingerprint(self) -> str:
        keys = "\n".join(sorted(item.sk for item in self.held_puts))
        return hashlib.sha256(keys.encode()).hexdigest()


def split_mass_drop(
    changes: RosterChanges, settings: TenantSettings
) -> tuple[RosterChanges, MassDrop | None]:
    """Hold student drops above the tenant's threshold. Removing instructor rights never waits."""
    student_drops = {sk for sk, role in changes.deactivated.items() if role is RosterRole.STUDENT}
    if len(student_drops) < settings.mass_drop_min_enrollments or len(student_drops) <= (
        settings.mass_drop_threshold * changes.active_before
    ):
        return changes, None
    held = MassDrop(
        held_puts=[item for item in changes.puts if item.sk in student_drops],
        held_deletes=list(changes.deletes),  # a vanished section waits with its students
        student_drops=len(student_drops),
        active_before=changes.active_before,
    )
    held_vanished = student_drops & changes.vanished
    applied = RosterChanges(
        puts=[item for item in changes.puts if item.sk not in student_drops],
        deletes=[],
        counts=changes.counts.model_copy(
            update={
                "dropped": changes.counts.dropped - len(held_vanished) - len(held.held_deletes),
                "updated": changes.counts.updated - len(student_drops - held_vanished),
            }
        ),
        deactivated={sk: role for sk, role in changes.deactivated.items() if sk not in student_drops},
        vanished=changes.vanished - student_drops,
        active_before=changes.active_before,
    )
    return applied, held


def held_drops(
    held_puts: Iterable[StoredItem], stored: Mapping[str, StoredItem], user_id_field: UserIdField
) -> list[HeldDrop]:
    """Who a held sync would drop: each enrollment's user by name and downstream identifier."""
    drops = []
    for item in held_puts:
        enrollment = RosterEnrollment.model_validate_json(item.data)
        user_item = stored.get(f"{USER_PREFIX}{enrollment.user_id}")
        user = RosterUser.model_validate_json(user_item.data) if user_item else None
        identifier = getattr(user, user_id_field.value, None) if user else None
        drops.append(
            HeldDrop(
                enrollment_id=enrollment.canvas_id,
                user_id=enrollment.user_id,
                name=user.name if user else "",
                identifier=None if identifier is None else str(identifier),
            )
        )
    return sorted(drops, key=lambda drop: (drop.name, drop.enrollment_id))
