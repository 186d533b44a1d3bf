"""The files the CLI is given: read as UTF-8 text (a byte order mark allowed), or refused in one line."""

from __future__ import annotations

import codecs
from pathlib import Path

UTF16_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class UnreadableFileError(RuntimeError):
    """A file argument that cannot be opened or is not UTF-8 text (the CLI prints it and exits 1)."""


def read_text_file(path: str | Path) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise UnreadableFileError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        text = data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as error:
        wrong, line = error.object[error.start], error.object[: error.start].count(b"\n") + 1
        why = "it is UTF-16" if data.startswith(UTF16_MARKS) else f"byte {wrong:#04x} on line {line}"
        raise UnreadableFileError(_not_utf8(path, why)) from error
    if "\x00" in text:  # valid UTF-8, but no text file holds NUL: UTF-16 without its byte order mark
        raise UnreadableFileError(_not_utf8(path, "it holds NUL bytes, as UTF-16 does"))
    return text


def _not_utf8(path: str | Path, why: str) -> str:
    return f"{path} is not UTF-8 text ({why}); save it as UTF-8, e.g. Excel's CSV UTF-8"
