"""The roster a sync should produce, computed independently from the Canvas simulator's ground truth.

This is the oracle of the demo and the integration tests: it reads the simulator's raw institution,
not anything rostersync stored, and applies the documented default rules (README, "What a sync does"):
published courses (API state "available"); sections by their current course (cross-listing);
enrollments in the active, invited, inactive and completed states, without the test student and
observers; one user per person, with email only when the tenant identifies users by email; users
without the identifying field, or sharing it with another user of the course, are sync errors and
are left out together with their enrollments.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

SYNCED_STATES = {"active", "invited", "inactive", "completed"}
EXCLUDED_TYPES = {"StudentViewEnrollment", "ObserverEnrollment"}


def _identifiable(user_ids: list[int], users_by_id: dict[int, Any], field: str) -> set[int]:
    def identifier(user_id: int) -> str | None:
        value = user_id if field == "canvas_id" else users_by_id[user_id].get(field)
        return None if value in (None, "") else str(value).strip().lower()

    holders = Counter(identifier(user_id) for user_id in user_ids)
    return {
        user_id
        for user_id in user_ids
        if identifier(user_id) is not None and holders[identifier(user_id)] < 2
    }


def expected_export(
    ground_truth: dict[str, Any], *, user_id_field: str = "sis_user_id"
) -> dict[int, dict[str, Any]]:
    with_email = user_id_field == "email"
    users_by_id = {user["id"]: user for user in ground_truth["users"]}
    expected: dict[int, dict[str, Any]] = {}
    for course in ground_truth["courses"]:
        if course["workflow_state"] != "available":
            continue
        enrollments = [
            enrollment
            for enrollment in ground_truth["enrollments"]
            if enrollment["course_id"] == course["id"]
            and enrollment["type"] not in EXCLUDED_TYPES
            and enrollment["enrollment_state"] in SYNCED_STATES
        ]
        identifiable = _identifiable(
            sorted({enrollment["user_id"] for enrollment in enrollments}), users_by_id, user_id_field
        )
        enrollments = [enrollment for enrollment in enrollments if enrollment["user_id"] in identifiable]
        user_ids = sorted(identifiable)
        expected[course["id"]] = {
            "canvas_id": course["id"],
            "sis_course_id": course.get("sis_course_id"),
            "name": course.get("original_name") or course["name"],
            "workflow_state": course["workflow_state"],
            "sections": sorted(
                (
                    {
                        "canvas_id": section["id"],
                        "name": section["name"],
                        "sis_section_id": section.get("sis_section_id"),
                        "nonxlist_course_id": section.get("nonxlist_course_id"),
                    }
                    for section in ground_truth["sections"]
                    if section["course_id"] == course["id"]
                ),
                key=lambda section: section["canvas_id"],
            ),
            "users": [
                {
                    "canvas_id": user_id,
                    "name": users_by_id[user_id]["name"],
                    "sortable_name": users_by_id[user_id].get("sortable_name"),
                    "sis_user_id": users_by_id[user_id].get("sis_user_id"),
                    "login_id": users_by_id[user_id].get("login_id"),
                    "email": users_by_id[user_id].get("email") if with_email else None,
                }
                for user_id in user_ids
            ],
            "enrollments": sorted(
                (
                    {
                        "canvas_id": enrollment["id"],
                        "user_id": enrollment["user_id"],
                        "section_id": enrollment["course_section_id"],
                        "type": enrollment["type"],
                        "role": enrollment["role"],
                        "role_id": enrollment.get("role_id"),
                        "state": enrollment["enrollment_state"],
                        "active": enrollment["enrollment_state"] == "active",
                        "dropped_at": None,
                        "dropped_reason": None,
                    }
                    for enrollment in enrollments
                ),
                key=lambda enrollment: enrollment["canvas_id"],
            ),
        }
    return expected


def differences(export: dict[str, Any], expected: dict[int, dict[str, Any]], limit: int = 20) -> list[str]:
    """Human-readable differences between an export and the expected rosters (empty when they agree)."""
    found: list[str] = []
    exported = {course["canvas_id"]: course for course in export["courses"]}
    for course_id in sorted(set(expected) - set(exported)):
        found.append(f"course {course_id} missing from the export")
    for course_id in sorted(set(exported) - set(expected)):
        found.append(f"course {course_id} exported but not expected")
    for course_id in sorted(set(expected) & set(exported)):
        want, got = expected[course_id], exported[course_id]
        for field in ("sis_course_id", "name", "workflow_state"):
            if want[field] != got[field]:
                found.append(f"course {course_id} {field}: expected {want[field]!r}, got {got[field]!r}")
        for kind in ("sections", "users", "enrollments"):
            want_items = {item["canvas_id"]: item for item in want[kind]}
            got_items = {item["canvas_id"]: item for item in got[kind]}
            for item_id in sorted(set(want_items) | set(got_items)):
                if want_items.get(item_id) != got_items.get(item_id):
                    found.append(
                        f"course {course_id} {kind[:-1]} {item_id}: expected {want_items.get(item_id)}, "
                        f"got {got_items.get(item_id)}"
                    )
    return found[:limit]


def totals(expected: dict[int, dict[str, Any]]) -> dict[str, int]:
    return {
        "courses": len(expected),
        "sections": sum(len(course["sections"]) for course in expected.values()),
        "users": len({user["canvas_id"] for course in expected.values() for user in course["users"]}),
        "enrollments": sum(len(course["enrollments"]) for course in expected.values()),
        "active_enrollments": sum(
            enrollment["active"] for course in expected.values() for enrollment in course["enrollments"]
        ),
    }


def minimum_requests(ground_truth: dict[str, Any], *, with_email: bool, per_page: int = 100) -> int:
    """The fewest Canvas requests a full sync can make: one per page of every list it must read.

    Courses (planner), then per synced course its sections and its enrollments in the synced states
    (the test student and observers included: Canvas returns them and the sync filters them out), and
    its users when emails are needed. An empty list still costs one request.
    """

    def pages(count: int) -> int:
        return max(1, -(-count // per_page))

    synced = [course for course in ground_truth["courses"] if course["workflow_state"] == "available"]
    total = pages(len(synced))
    for course in synced:
        enrollments = [
            enrollment
            for enrollment in ground_truth["enrollments"]
            if enrollment["course_id"] == course["id"] and enrollment["enrollment_state"] in SYNCED_STATES
        ]
        sections = [section for section in ground_truth["sections"] if section["course_id"] == course["id"]]
        total += pages(len(sections)) + pages(len(enrollments))
        if with_email:
            listed_users = {e["user_id"] for e in enrollments if e["type"] != "StudentViewEnrollment"}
            total += pages(len(listed_users))
    return total
