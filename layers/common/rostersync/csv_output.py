"""Every CSV the product writes goes through here: no cell may start what a spreadsheet runs as a formula.

Cells hold text from Canvas (names, e-mails, course titles, Canvas's own error messages), which is
untrusted. OWASP's CSV injection rule: a cell that starts with = + - @, a tab or a carriage return is
prefixed with a single quote, so that Excel, LibreOffice and Google Sheets show it as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

# The full-width forms too: Excel in some locales reads them as their ASCII twins.
FORMULA_STARTS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def neutral_cell(value: object) -> str:
    """The cell's text, prefixed with ' when it (or its text after leading blanks) would start a formula."""
    text = "" if value is None else str(value)
    if text[:1] in FORMULA_STARTS or text.lstrip()[:1] in FORMULA_STARTS:
        return f"'{text}"
    return text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV document (quoting by the csv module, every cell neutralised); None cells are empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([neutral_cell(name) for name in header])
    writer.writerows([neutral_cell(value) for value in row] for row in rows)
    return out.getvalue()
