"""How list and status commands print: an aligned table for people by default, JSON with --format json."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

TABLE, JSON = "table", "json"
EMPTY_CELL = "-"


def add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=[TABLE, JSON], default=TABLE, help="table (default) or json for scripts"
    )


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def table_text(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(headers), *[[_cell(value) for value in row] for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def emit(
    arguments: argparse.Namespace,
    value: Any,
    headers: Sequence[str],
    rows: Callable[[], Sequence[Sequence[object]]],
    empty: str = "",
) -> None:
    """Print `value` as JSON, or `rows()` under `headers` (or `empty`, when given and there are no rows)."""
    if arguments.format == JSON:
        print_json(value)
        return
    table = rows()
    print(empty if empty and not table else table_text(headers, table))


def _cell(value: object) -> str:
    if value is None or value == "":
        return EMPTY_CELL
    # Untrusted text (names from Canvas, message bodies) stays on one line and cannot move the cursor.
    return "".join(character if character.isprintable() else " " for character in str(value))
