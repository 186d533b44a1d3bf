"""Pure parts of grade passback: what to PUT for a grade, given the submission Canvas has now."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from rostersync.models import GradeEntry

Params = list[tuple[str, str]]
# Canvas's default grading scheme (letter -> lower bound); a course with its own scheme may differ, which
# costs at most one unneeded PUT for a letter grade on a points assignment, never a wrong grade.
DEFAULT_SCHEME: dict[str, float] = {
    "a": 0.94, "a-": 0.90, "b+": 0.87, "b": 0.84, "b-": 0.80, "c+": 0.77, "c": 0.74,
    "c-": 0.70, "d+": 0.67, "d": 0.64, "d-": 0.61, "f": 0.0,
}  # fmt: skip
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def format_number(value: float) -> str:
    rounded = round(value, 2)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:g}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    return float(text) if _NUMBER.match(text) else None


def _same_number(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, abs_tol=0.005)


def posted_grade(entry: GradeEntry, grading_type: str, points_possible: float | None) -> str | None:
    """The `submission[posted_grade]` for a grade (None when it gives no grade: excused or comment only)."""
    if entry.score is not None:
        if grading_type == "percent" and points_possible:
            return f"{format_number(entry.score / points_possible * 100)}%"
        return format_number(entry.score)
    if entry.grade:
        return entry.grade.strip()
    return None


def _grade_matches(wanted: str, submission: Mapping[str, Any], points_possible: float | None) -> bool:
    current_grade, current_score = submission.get("grade"), _number(submission.get("score"))
    if current_grade is not None and str(current_grade).strip().lower() == wanted.lower():
        return True
    number = _number(wanted)
    if number is not None:
        return _same_number(number, current_score) or _same_number(number, _number(current_grade))
    if wanted.endswith("%") and points_possible:
        percent = _number(wanted[:-1])
        return percent is not None and _same_number(points_possible * percent / 100, current_score)
    lower = DEFAULT_SCHEME.get(wanted.lower())
    if lower is not None and points_possible:
        return _same_number(points_possible * lower, current_score)
    return False


def submission_changes(
    entry: GradeEntry,
    submission: Mapping[str, Any],
    *,
    grading_type: str = "points",
    points_possible: float | None = None,
) -> Params:
    """The PUT parameters that bring `submission` to `entry`; empty when Canvas already has it."""
    params: Params = []
    excused = bool(submission.get("excused"))
    if entry.excused:
        if not excused:
            params.append(("submission[excuse]", "true"))
    else:
        wanted = posted_grade(entry, grading_type, points_possible)
        if wanted is not None and (excused or not _grade_matches(wanted, submission, points_possible)):
            params.append(("submission[posted_grade]", wanted))
    comment = (entry.comment or "").strip()
    if comment:
        existing = {
            str(item.get("comment", "")).strip()
            for item in submission.get("submission_comments") or []
            if isinstance(item, Mapping)
        }
        if comment not in existing:
            params.append(("comment[text_comment]", comment))
    return params
