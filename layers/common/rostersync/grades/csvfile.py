"""A grades CSV: columns student, score, grade, excused, comment (student and one of the others)."""

from __future__ import annotations

import csv
import io
import math
import re

from pydantic import ValidationError

from rostersync.models import GradeEntry

COLUMNS = ("student", "score", "grade", "excused", "comment")
_TRUE = {"true", "yes", "y", "1", "x"}
_FALSE = {"", "false", "no", "n", "0"}
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class GradeCsvError(ValueError):
    pass


def parse_grades_csv(text: str) -> list[GradeEntry]:
    try:
        return _parse(text)
    except csv.Error as error:  # a field longer than the csv module takes (131072 characters)
        raise GradeCsvError(f"the CSV is malformed or a field is too long: {error}") from error


def _parse(text: str) -> list[GradeEntry]:
    # newline="": the csv module then reads \r, \n and \r\n line ends itself, quoted ones included.
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    if "student" not in header:
        raise GradeCsvError(f"the CSV needs a student column (columns: {', '.join(COLUMNS)})")
    unknown = set(header) - set(COLUMNS)
    if unknown:
        raise GradeCsvError(f"unknown columns: {', '.join(sorted(unknown))}")
    reader.fieldnames = header
    entries: list[GradeEntry] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        values = {key: (value or "").strip() for key, value in row.items() if key is not None}
        if not any(values.values()):
            continue
        entries.append(_entry(line, values))
        student = entries[-1].student.lower()
        if student in seen:
            raise GradeCsvError(
                f"line {line}: student {entries[-1].student!r} is also on line {seen[student]}"
            )
        seen[student] = line
    if not entries:
        raise GradeCsvError("the CSV has no grades")
    return entries


def _entry(line: int, values: dict[str, str]) -> GradeEntry:
    excused_text = values.get("excused", "").lower()
    if excused_text not in _TRUE | _FALSE:
        raise GradeCsvError(f"line {line}: excused must be true or false, not {values['excused']!r}")
    score_text = values.get("score", "")
    # A plain decimal, so that nan, inf and overflowing exponents (1e999) are refused as the text they are.
    score = float(score_text) if _DECIMAL.match(score_text) else None
    if score_text and (score is None or not math.isfinite(score)):
        raise GradeCsvError(f"line {line}: score {score_text!r} is not a number")
    try:
        return GradeEntry(
            student=values.get("student", ""),
            score=score,
            grade=values.get("grade") or None,
            excused=excused_text in _TRUE,
            comment=values.get("comment") or None,
        )
    except ValidationError as error:
        reasons = "; ".join(str(item["msg"]) for item in error.errors())
        raise GradeCsvError(f"line {line}: {reasons}") from error
