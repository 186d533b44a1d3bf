"""Canvas pagination: numbered pages and bookmark pages, with Canvas's ``Link`` header."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlencode

from werkzeug.wrappers import Request

from .config import SimulatorConfig
from .web import not_found

T = TypeVar("T")

EXCLUDED_LINK_PARAMS = frozenset({"access_token", "api_key", "page", "per_page"})
LINK_HEADER_LIMIT = 6 * 1024
# Canvas drops the least important rels first when the header gets too long; `next` survives longest.
_DROP_ORDER = ("first", "current", "prev", "last")
_LEADING_INT = re.compile(r"^\s*([+-]?\d+)")


@dataclass
class Page(Generic[T]):
    items: list[T]
    link: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Link": self.link} if self.link else {}


def ruby_to_i(raw: str | None) -> int:
    """Ruby's ``String#to_i``: leading integer or 0."""
    if raw is None:
        return 0
    match = _LEADING_INT.match(raw)
    return int(match.group(1)) if match else 0


def per_page_of(request: Request, config: SimulatorConfig) -> int:
    raw = request.args.get("per_page")
    if raw is None or raw == "":
        return config.default_per_page
    return max(1, min(ruby_to_i(raw), config.max_per_page))


def _link_url(request: Request, page_value: str, per_page: int) -> str:
    pairs = [(k, v) for k, v in request.args.items(multi=True) if k not in EXCLUDED_LINK_PARAMS]
    pairs += [("page", page_value), ("per_page", str(per_page))]
    return f"{request.base_url}?{urlencode(pairs)}"


def link_header(request: Request, rels: Sequence[tuple[str, str]], per_page: int) -> str:
    entries = {rel: f'<{_link_url(request, value, per_page)}>; rel="{rel}"' for rel, value in rels}
    for rel in _DROP_ORDER:
        if len(",".join(entries.values())) <= LINK_HEADER_LIMIT:
            break
        entries.pop(rel, None)
    return ",".join(entries.values())


def numbered(
    request: Request, config: SimulatorConfig, items: Sequence[T], *, include_last: bool = True
) -> Page[T]:
    per_page = per_page_of(request, config)
    page = max(1, ruby_to_i(request.args.get("page")))
    start = (page - 1) * per_page
    chunk = list(items[start : start + per_page])
    rels = [("current", str(page))]
    if start + per_page < len(items):
        rels.append(("next", str(page + 1)))
    if page > 1:
        rels.append(("prev", str(page - 1)))
    rels.append(("first", "1"))
    if include_last:
        rels.append(("last", str(max(1, math.ceil(len(items) / per_page)))))
    return Page(chunk, link_header(request, rels, per_page))


def encode_bookmark(key: int) -> str:
    raw = base64.urlsafe_b64encode(json.dumps([key]).encode()).decode().rstrip("=")
    return f"bookmark:{raw}"


def decode_bookmark(value: str) -> int | None:
    body = value.removeprefix("bookmark:")
    try:
        decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        return None
    if isinstance(decoded, list) and len(decoded) == 1 and type(decoded[0]) is int:
        return decoded[0]
    return None


def bookmarked(
    request: Request, config: SimulatorConfig, items: Sequence[T], key: Callable[[T], int]
) -> Page[T]:
    """Bookmark pagination over ``items`` sorted by ascending ``key`` (no ``last``/``prev`` links)."""
    per_page = per_page_of(request, config)
    raw = request.args.get("page") or "first"
    if raw in {"first", "1"}:
        start = 0
    elif raw.startswith("bookmark:"):
        after = decode_bookmark(raw)
        if after is None:
            raise not_found()
        start = bisect_right([key(item) for item in items], after)
    else:
        raise not_found()
    chunk = list(items[start : start + per_page])
    rels = [("current", raw)]
    if start + per_page < len(items):
        rels.append(("next", encode_bookmark(key(chunk[-1]))))
    rels.append(("first", "first"))
    return Page(chunk, link_header(request, rels, per_page))
