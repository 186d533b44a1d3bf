"""Parse one raw Canvas Live Event (Canvas or Caliper IMS 1.1 format) into a `ParsedEvent`. Pure: no I/O.

Events are hints (docs/architecture.md, "Events are hints"): the parser only normalises them; routing
and re-reading the affected objects happen elsewhere. Here: format detection and the "invalid" outcome;
canvas_format and caliper_format normalise each format, fields holds what both share.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from rostersync.events.caliper_format import parse_caliper_event
from rostersync.events.canvas_format import parse_canvas_event
from rostersync.events.fields import InvalidEvent, Json
from rostersync.events.models import ParsedEvent

__all__ = ["parse_event"]

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def parse_event(raw: Mapping[str, Any] | str | bytes) -> ParsedEvent:
    """Classify and normalise one live event: "ok" (roster-relevant), "ignored" (with the reason) or
    "invalid" (malformed, with the reason). Never raises."""
    try:
        return _parse(raw)
    except InvalidEvent as invalid:
        return ParsedEvent(status="invalid", reason=invalid.reason)
    except Exception as error:  # a last guard: one odd event must not stop a batch
        return ParsedEvent(status="invalid", reason=f"internal error: {type(error).__name__}: {error}")


def _parse(raw: Mapping[str, Any] | str | bytes) -> ParsedEvent:
    document = _load(raw)
    if "metadata" in document or "body" in document:
        return parse_canvas_event(document)
    if "data" in document or "sensor" in document:
        return parse_caliper_event(document)
    raise InvalidEvent("neither a Canvas event (metadata/body) nor a Caliper envelope (data[])")


def _load(raw: Mapping[str, Any] | str | bytes) -> Json:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidEvent(f"not UTF-8 text: {error}") from error
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            raise InvalidEvent("empty input")
        try:
            document: Any = json.loads(text)
        except ValueError as error:
            if _JWT_SHAPE.fullmatch(text):
                raise InvalidEvent(
                    "a signed JWT, not JSON: decode it with decode_signed_event first"
                ) from error
            raise InvalidEvent(f"not JSON: {error}") from error
    else:
        document = raw
    if not isinstance(document, Mapping):
        raise InvalidEvent(f"not a JSON object (got {type(document).__name__})")
    return dict(document)
