"""What every record kind shares: the clock and Canvas ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import Field


def utc_now() -> datetime:
    return datetime.now(UTC)


# Canvas ids are positive 64-bit integers: anything longer is not an id (and would not fit DynamoDB's
# 38-digit numbers), and only ASCII digits spell one (Arabic-Indic or fullwidth digits do not).
CANVAS_ID_MAX = 2**63 - 1
CanvasId = Annotated[int, Field(ge=1, le=CANVAS_ID_MAX)]
_CANVAS_ID_TEXT = re.compile(r"[1-9][0-9]{0,18}")


def parse_canvas_id(text: str) -> int | None:
    """A Canvas id written in a path or a file, or None when the text is not one."""
    if not _CANVAS_ID_TEXT.fullmatch(text):
        return None
    value = int(text)
    return value if value <= CANVAS_ID_MAX else None
