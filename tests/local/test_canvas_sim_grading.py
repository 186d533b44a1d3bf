"""Unit tests of the simulator's posted-grade interpretation and Rails-style parameter parsing."""

from __future__ import annotations

import pytest

from rostersync_local.canvas_sim.grading import GradeError, interpret_grade
from rostersync_local.canvas_sim.pagination import decode_bookmark, encode_bookmark, ruby_to_i
from rostersync_local.canvas_sim.web import nested_params


@pytest.mark.parametrize(
    ("posted", "grading_type", "points", "expected"),
    [
        ("13.5", "points", 20, ("13.5", 13.5)),
        ("40%", "points", 20, ("8", 8.0)),
        ("A-", "points", 10, ("9", 9.0)),
        ("40", "percent", 20, ("40%", 8.0)),
        ("complete", "pass_fail", 5, ("complete", 5.0)),
        ("0", "pass_fail", 5, ("incomplete", 0.0)),
        ("b+", "letter_grade", 100, ("B+", 87.0)),
        ("95", "letter_grade", 100, ("A", 95.0)),
        ("", "points", 10, (None, None)),
    ],
)
def test_interpret_grade(
    posted: str, grading_type: str, points: float, expected: tuple[str | None, float | None]
) -> None:
    assert interpret_grade(posted, grading_type, points) == expected


@pytest.mark.parametrize(
    ("posted", "grading_type"),
    [("lots", "points"), ("3", "pass_fail"), ("A", "not_graded"), ("1e999", "points"), ("Z", "letter_grade")],
)
def test_interpret_grade_rejects(posted: str, grading_type: str) -> None:
    with pytest.raises(GradeError):
        interpret_grade(posted, grading_type, 5)


def test_nested_params() -> None:
    pairs = [
        ("assignment[name]", "Quiz"),
        ("assignment[submission_types][]", "on_paper"),
        ("assignment[submission_types][]", "online_url"),
        ("plain", "x"),
    ]
    assert nested_params(pairs) == {
        "assignment": {"name": "Quiz", "submission_types": ["on_paper", "online_url"]},
        "plain": "x",
    }


def test_bookmarks_and_page_numbers() -> None:
    assert decode_bookmark(encode_bookmark(50123)) == 50123
    assert decode_bookmark("bookmark:%%%") is None
    assert decode_bookmark("bookmark:WyJ4Il0") is None  # ["x"]
    assert (ruby_to_i("12abc"), ruby_to_i("first"), ruby_to_i(None)) == (12, 0, 0)
