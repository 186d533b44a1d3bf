"""Grade passback: the CSV, the models, diffing a submission, and re-sending against a scripted Canvas."""

from collections.abc import Iterator

import pytest

from rostersync.grades.csvfile import GradeCsvError, parse_grades_csv
from rostersync.grades.passback import SEND_ATTEMPTS, pass_grade
from rostersync.grades.submission import posted_grade, submission_changes
from rostersync.models import GradeAssignment, GradeBatchRecord, GradeEntry, GradeState, GradeStatus
from rostersync.store.grades import StoredGrade
from tests.unit.test_canvas_client import ScriptedCanvas, client_for, scripted_canvas


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


SUBMISSION = "/api/v1/courses/1/assignments/2/submissions/3"
RECORD = GradeBatchRecord(
    tenant_id="t",
    batch_id="b",
    course_id=1,
    assignment=GradeAssignment(external_id="x", name="X", points_possible=10),
    size=1,
)


@pytest.fixture
def canvas() -> Iterator[ScriptedCanvas]:
    with scripted_canvas() as scripted:
        yield scripted


def _pass(canvas: ScriptedCanvas, entry: GradeEntry) -> GradeStatus:
    grade = StoredGrade(entry=entry, status=GradeStatus(index=0, student=entry.student))
    return pass_grade(client_for(canvas), RECORD, 2, {"s": 3}, grade)


def test_a_put_that_landed_without_an_answer_is_not_sent_again(canvas: ScriptedCanvas) -> None:
    canvas.reply(SUBMISSION, {"score": None, "grade": None, "submission_comments": []})
    canvas.reply(SUBMISSION, {"errors": [{"message": "gateway timeout"}]}, status=504)  # it landed anyway
    canvas.reply(SUBMISSION, {"score": 8.0, "grade": "8", "submission_comments": [{"comment": "Good"}]})
    status = _pass(canvas, GradeEntry(student="s", score=8, comment="Good"))
    assert status.state is GradeState.SENT
    assert [request.method for request in canvas.seen] == ["GET", "PUT", "GET"]
    assert all(request.args.getlist("include[]") == ["submission_comments"] for request in canvas.seen[::2])


def test_a_put_that_did_not_land_is_sent_again_after_reading_back(canvas: ScriptedCanvas) -> None:
    for _ in range(2):
        canvas.reply(SUBMISSION, {"score": None, "grade": None, "submission_comments": []})
        canvas.reply(SUBMISSION, {"errors": [{"message": "An error occurred."}]}, status=500)
    canvas.reply(SUBMISSION, {"score": None, "grade": None, "submission_comments": []})
    canvas.reply(SUBMISSION, {"score": 8.0})
    assert _pass(canvas, GradeEntry(student="s", score=8, comment="Good")).state is GradeState.SENT
    puts = [request for request in canvas.seen if request.method == "PUT"]
    assert len(puts) == SEND_ATTEMPTS
    assert all(put.form.get("comment[text_comment]") == "Good" for put in puts)


def test_a_comment_is_not_sent_when_canvas_hides_the_comments(canvas: ScriptedCanvas) -> None:
    canvas.reply(SUBMISSION, {"score": None, "grade": None})  # include[] ignored: no submission_comments key
    status = _pass(canvas, GradeEntry(student="s", score=8, comment="Good"))
    assert (status.state, status.reason_code) == (GradeState.FAILED, "comments_hidden")
    assert [request.method for request in canvas.seen] == ["GET"]
