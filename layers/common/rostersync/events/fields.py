"""What the Canvas and Caliper live-event formats share: field readers and the outcomes they build.

A reader raises `InvalidEvent` when a field the event cannot do without is missing or malformed;
`parse_event` turns that into an "invalid" outcome. Optional context fields are dropped with a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from rostersync.events.models import NormalizedEvent, ObjectType, ParsedEvent
from rostersync.events.normalize import IdError, id_from_reference, parse_timestamp, to_local_id

CANVAS_EXTENSION = "com.instructure.canvas"

Json = dict[str, Any]


class InvalidEvent(Exception):
    """The event is malformed; `reason` says how. `parse_event` turns it into an "invalid" outcome."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def ok_outcome(common: Json, object_type: ObjectType, fields: Json, warnings: list[str]) -> ParsedEvent:
    event = NormalizedEvent(**common, object_type=object_type, **fields)
    return ParsedEvent(status="ok", event=event, warnings=tuple(warnings))


def ignored_outcome(reason: str, envelope: Callable[[list[str]], Json], warnings: list[str]) -> ParsedEvent:
    """An ignored event keeps its envelope (name, time, tenant) when that part is readable."""
    try:
        event: NormalizedEvent | None = NormalizedEvent(**envelope(warnings))
    except InvalidEvent as invalid:
        event = None
        warnings.append(f"envelope unusable: {invalid.reason}")
    return ParsedEvent(status="ignored", reason=reason, event=event, warnings=tuple(warnings))


def read_id(source: Mapping[str, Any], key: str, label: str, *, required: bool = False) -> int | None:
    try:
        value = to_local_id(source.get(key))
    except IdError as error:
        raise InvalidEvent(f"{label}.{key} is not a Canvas id: {source.get(key)!r}") from error
    if value is None and required:
        raise InvalidEvent(f"{label}.{key} is missing")
    return value


def read_ref(
    source: Mapping[str, Any], key: str, entity: str, label: str, *, required: bool = False
) -> int | None:
    try:
        value = id_from_reference(source.get(key), entity)
    except IdError as error:
        raise InvalidEvent(f"{label}.{key} is not a Canvas {entity} id: {source.get(key)!r}") from error
    if value is None and required:
        raise InvalidEvent(f"{label}.{key} is missing")
    return value


def hint_id(
    source: Mapping[str, Any], key: str, label: str, warnings: list[str], entity: str = ""
) -> int | None:
    """A context id (who acted, where): an unparseable one is dropped with a warning, not fatal."""
    try:
        return id_from_reference(source.get(key), entity) if entity else to_local_id(source.get(key))
    except IdError:
        warnings.append(f"{label}.{key} is not a Canvas id, ignored: {source.get(key)!r}")
        return None


def read_text(source: Mapping[str, Any], key: str) -> str | None:
    value = source.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def optional_time(source: Mapping[str, Any], key: str, label: str, warnings: list[str]) -> datetime | None:
    """An optional timestamp: an unparseable one is dropped with a warning (documented typos exist)."""
    try:
        return parse_timestamp(source.get(key))
    except ValueError:
        warnings.append(f"{label}.{key} unparseable, ignored: {source.get(key)!r}")
        return None


def required_time(source: Mapping[str, Any], key: str, label: str) -> datetime:
    try:
        moment = parse_timestamp(source.get(key))
    except ValueError as error:
        raise InvalidEvent(f"{label}.{key} is not a timestamp: {source.get(key)!r}") from error
    if moment is None:
        raise InvalidEvent(f"{label}.{key} is missing")
    return moment


def sub_object(source: Mapping[str, Any], key: str) -> Json:
    value = source.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def canvas_extension(source: Mapping[str, Any]) -> Json:
    return sub_object(sub_object(source, "extensions"), CANVAS_EXTENSION)
