"""Pure helpers: live-event ids, timestamps and Caliper URNs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

# Canvas global ids are shard * 10**13 + local id (docs/architecture.md, "Canvas facts").
SHARD_FACTOR = 10**13
CALIPER_URN_PREFIX = "urn:instructure:canvas:"

_DIGITS = re.compile(r"[0-9]+")
_SHORT_GLOBAL = re.compile(r"([0-9]+)~([0-9]+)")  # Canvas's "shard~local" notation
_TIMESTAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<frac>\d{1,9}))?)?"
    r"\s*(?P<tz>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE | re.ASCII,
)
_EPOCH_MILLIS_ABOVE = 10**11  # numeric timestamps above this are milliseconds
_MAX_ID_DIGITS = 40  # far above any Canvas id; keeps int() away from its digit limit


class IdError(ValueError):
    """A value that should be a Canvas id is not one."""


def to_local_id(value: Any) -> int | None:
    """A Canvas id (int, numeric string, "shard~local", global or local) as a local int; None when absent.

    >>> to_local_id("21070000000000565"), to_local_id(565), to_local_id("2107~565"), to_local_id(None)
    (565, 565, 565, None)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise IdError(f"not an id: {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise IdError(f"not an id: {value!r}")
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        short = _SHORT_GLOBAL.fullmatch(text)
        if short and len(text) <= _MAX_ID_DIGITS:
            return int(short.group(2))
        if not _DIGITS.fullmatch(text) or len(text) > _MAX_ID_DIGITS:
            raise IdError(f"not an id: {value!r}")
        number = int(text)
    else:
        raise IdError(f"not an id: {value!r}")
    if number < 0:
        raise IdError(f"not an id: {value!r}")
    return number % SHARD_FACTOR


def parse_caliper_urn(value: Any) -> dict[str, str]:
    """The type/id pairs of a Canvas Caliper URN, e.g.
    "urn:instructure:canvas:course:21070000000000565:section:21070000000004811"
    -> {"course": "21070000000000565", "section": "21070000000004811"}. Empty when not such a URN."""
    if not isinstance(value, str) or not value.startswith(CALIPER_URN_PREFIX):
        return {}
    parts = value[len(CALIPER_URN_PREFIX) :].split(":")
    pairs: dict[str, str] = {}
    for index in range(0, len(parts) - 1, 2):
        pairs.setdefault(parts[index], parts[index + 1])
    return pairs


def caliper_urn_type(value: Any) -> str | None:
    """The first entity type of a Canvas Caliper URN ("urn:instructure:canvas:user:1" -> "user")."""
    if not isinstance(value, str) or not value.startswith(CALIPER_URN_PREFIX):
        return None
    head = value[len(CALIPER_URN_PREFIX) :].split(":", 1)[0]
    return head or None


def id_from_reference(value: Any, entity: str) -> int | None:
    """An id that may be plain ("565", 565) or a Caliper URN naming `entity` ("...:course:565:section:7")."""
    if isinstance(value, str) and value.startswith(CALIPER_URN_PREFIX):
        pairs = parse_caliper_urn(value)
        if entity not in pairs:
            raise IdError(f"URN without a {entity} id: {value!r}")
        return to_local_id(pairs[entity])
    return to_local_id(value)


def parse_timestamp(value: Any) -> datetime | None:
    """A Canvas/Caliper timestamp as an aware UTC datetime (naive values are UTC); None when absent.

    Accepts ISO 8601 ("2018-10-09T21:07:33Z", "2019-11-01T19:11:00.802Z"), Canvas's Ruby style
    ("2019-11-05 07:38:00 -0800", "... UTC") and epoch seconds or milliseconds.
    Raises ValueError for anything else (e.g. the documented typo "019-11-01T19:11:01.163Z").
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > _EPOCH_MILLIS_ABOVE else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as error:
            raise ValueError(f"not a timestamp: {value!r}") from error
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    text = value.strip()
    if not text:
        return None
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"not a timestamp: {value!r}")
    fraction = (match["frac"] or "").ljust(6, "0")[:6]
    try:
        moment = datetime.fromisoformat(
            f"{match['date']}T{match['h']}:{match['m']}:{match['s'] or '00'}.{fraction or '000000'}"
        )
    except ValueError as error:
        raise ValueError(f"not a timestamp: {value!r}") from error
    return moment.replace(tzinfo=_zone(match["tz"])).astimezone(UTC)


def _zone(text: str | None) -> timezone:
    if text is None or text.upper() in {"Z", "UTC", "GMT"}:
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or "0")
    if hours > 23 or minutes > 59:
        raise ValueError(f"not a UTC offset: {text!r}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))
