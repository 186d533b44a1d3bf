"""Pure parts of grade passback: the CSV, the models and diffing a submission."""

import pytest

from rostersync.grades.csvfile import GradeCsvError, parse_grades_csv
from rostersync.grades.submission import posted_grade, submission_changes
from rostersync.models import GradeEntry


def test_csv_rows_become_grades() -> None:
    text = (
        "\ufeffStudent,score,grade,excused,comment\n"
        "s1,85.5,,,\ns2,,B+,,Nice\ns3,,,yes,\n\n,,,,\ns4,,,,Only a note\n"
    )
    assert parse_grades_csv(text) == [
        GradeEntry(student="s1", score=85.5),
        GradeEntry(student="s2", grade="B+", comment="Nice"),
        GradeEntry(student="s3", excused=True),
        GradeEntry(student="s4", comment="Only a note"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,score\nx,1\n", "student column"),
        ("student,score,bonus\nx,1,2\n", "unknown columns: bonus"),
        ("student,score\nx,ten\n", "line 2: score 'ten' is not a number"),
        ("student,excused\nx,maybe\n", "line 2: excused must be true or false"),
        ("student,score,grade\nx,1,A\n", "line 2: Value error, give one of score, grade or excused"),
        ("student,score\nx,\n", "line 2: Value error, give a score"),
        ("student,score\nx,1\nX,2\n", "line 3: student 'X' is also on line 2"),
        ("student,score\n", "no grades"),
    ],
)
def test_bad_csv_is_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(GradeCsvError, match=message):
        parse_grades_csv(text)


def test_posted_grade_follows_the_grading_type() -> None:
    assert posted_grade(GradeEntry(student="s", score=42.0), "points", 50) == "42"
    assert posted_grade(GradeEntry(student="s", score=42.5), "percent", 50) == "85%"
    assert posted_grade(GradeEntry(student="s", grade=" A- "), "letter_grade", 100) == "A-"
    assert posted_grade(GradeEntry(student="s", excused=True), "points", 100) is None


UNGRADED = {"score": None, "grade": None, "excused": False}


@pytest.mark.parametrize(
    ("entry", "submission", "expected"),
    [
        (GradeEntry(student="s", score=80), UNGRADED, [("submission[posted_grade]", "80")]),
        (GradeEntry(student="s", score=80), {"score": 80.0, "grade": "80", "excused": False}, []),
        (
            GradeEntry(student="s", score=80),
            {"score": 79.0, "grade": "79"},
            [("submission[posted_grade]", "80")],
        ),
        (
            GradeEntry(student="s", score=80),
            {"score": None, "grade": None, "excused": True},
            [("submission[posted_grade]", "80")],
        ),
        (GradeEntry(student="s", grade="b+"), {"score": 87.0, "grade": "B+"}, []),
        (GradeEntry(student="s", grade="B+"), {"score": 87.0, "grade": "87"}, []),
        (GradeEntry(student="s", grade="85%"), {"score": 85.0, "grade": "85"}, []),
        (GradeEntry(student="s", grade="complete"), {"score": 100.0, "grade": "complete"}, []),
        (GradeEntry(student="s", excused=True), UNGRADED, [("submission[excuse]", "true")]),
        (GradeEntry(student="s", excused=True), {"excused": True}, []),
        (
            GradeEntry(student="s", score=1, comment="Good"),
            {"score": 1.0, "submission_comments": []},
            [("comment[text_comment]", "Good")],
        ),
        (
            GradeEntry(student="s", score=1, comment="Good "),
            {"score": 1.0, "submission_comments": [{"comment": "Good"}]},
            [],
        ),
    ],
)
def test_only_what_differs_is_sent(
    entry: GradeEntry, submission: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    assert submission_changes(entry, submission, grading_type="points", points_possible=100) == expected
