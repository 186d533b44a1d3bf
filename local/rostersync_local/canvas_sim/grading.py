"""Interpretation of ``submission[posted_grade]`` the way Canvas does it for each grading type."""

from __future__ import annotations

import math
import re

# Canvas's default grading scheme: letter -> lower bound of its range (fraction of points).
DEFAULT_SCHEME: tuple[tuple[str, float], ...] = (
    ("A", 0.94), ("A-", 0.90), ("B+", 0.87), ("B", 0.84), ("B-", 0.80), ("C+", 0.77), ("C", 0.74),
    ("C-", 0.70), ("D+", 0.67), ("D", 0.64), ("D-", 0.61), ("F", 0.0),
)  # fmt: skip
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_PASS = {"pass", "complete"}
_FAIL = {"fail", "incomplete"}


class GradeError(ValueError):
    """An unparsable or not allowed grade (answered with 400 ``{"error": ...}``)."""


def _grade_text(value: float) -> str:
    """A numeric grade as Canvas writes it; the simulator's own copy, so a product bug cannot hide in it."""
    rounded = round(value, 2)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:g}"


def _number(text: str) -> float | None:
    return float(text) if _NUMBER.match(text) else None


def _percent(text: str) -> float | None:
    if text.endswith("%"):
        return _number(text[:-1].strip())
    return None


def _letter_fraction(text: str) -> float | None:
    for letter, lower in DEFAULT_SCHEME:
        if letter.lower() == text.lower():
            return lower
    return None


def letter_for(fraction: float) -> str:
    for letter, lower in DEFAULT_SCHEME:
        if fraction >= lower - 1e-9:
            return letter
    return DEFAULT_SCHEME[-1][0]


def interpret_grade(
    posted: str, grading_type: str, points_possible: float | None
) -> tuple[str | None, float | None]:
    """Return ``(grade, score)`` for a posted grade; ``("", ...)`` input clears the grade."""
    text = posted.strip()
    if text == "":
        return None, None
    points = points_possible or 0.0
    if grading_type == "not_graded":
        raise GradeError("This assignment is not graded")
    if grading_type == "pass_fail":
        return _pass_fail(text, points)
    number, percent, letter = _number(text), _percent(text), _letter_fraction(text)
    if number is None and percent is None and letter is None and text.lower() in _PASS | _FAIL:
        number = points if text.lower() in _PASS else 0.0
    if number is not None:
        score = number if grading_type != "percent" else points * number / 100
    elif percent is not None:
        score = points * percent / 100
    elif letter is not None:
        score = points * letter
    else:
        raise GradeError(f"Invalid grade value {posted!r}: expected a number, a percentage or a letter grade")
    if not math.isfinite(score):
        raise GradeError(f"Invalid grade value {posted!r}")
    if grading_type == "percent":
        fraction = score / points if points else (number or percent or 0.0) / 100
        return f"{_grade_text(fraction * 100)}%", score
    if grading_type in {"letter_grade", "gpa_scale"}:
        if letter is not None and number is None and percent is None:
            canonical = next(name for name, _ in DEFAULT_SCHEME if name.lower() == text.lower())
            return canonical, score
        return letter_for(score / points if points else 1.0), score
    return _grade_text(score), score


def _pass_fail(text: str, points: float) -> tuple[str, float]:
    lowered = text.lower()
    if lowered in _PASS:
        return "complete", points
    if lowered in _FAIL:
        return "incomplete", 0.0
    number = _number(text)
    if number is not None and number == 0:
        return "incomplete", 0.0
    if number is not None and number == points and points > 0:
        return "complete", points
    raise GradeError("Pass/fail assignments only accept complete, incomplete, 0 or full points")
