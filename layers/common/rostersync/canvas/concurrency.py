"""How many requests one Canvas token may have in flight: additive increase, multiplicative decrease.

Canvas charges each request a token has in flight a pre-flight penalty against the token's quota (50 by
default, of a high-water mark of 600), credits it back when the request finishes and keeps only the
request's real cost, roughly its server time; the quota leaks 10 per second. So a token can have about
600 / 50 = 12 requests in flight, and the `X-Rate-Limit-Remaining` of each answer says how much room the
others still leave: 600 - 50 x (the other requests in flight) - the cost not yet leaked.

:class:`AimdLimit` turns those answers into a limit: one more request in flight per round of answers
while the remaining quota leaves room for more than two further pre-flight penalties, a quarter less when
it leaves room for fewer than two, half as many on a throttled answer; never fewer than one, never more
than high-water / pre-flight minus a margin. Pure logic: who shares it and where it is kept is the
caller's business.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

CANVAS_HIGH_WATER = 600.0
CANVAS_PRE_FLIGHT_PENALTY = 50.0
# Room left below Canvas's in-flight bound for requests the limit does not see (a refresh, a clock skew).
IN_FLIGHT_MARGIN = 2


class RateLimitObserver(Protocol):
    """What a Canvas client tells about each answer (a CanvasClient calls it from any thread)."""

    def observe(self, remaining: float) -> None:
        """An answer carried `X-Rate-Limit-Remaining: remaining`."""
        ...

    def throttled(self) -> None:
        """Canvas refused a request for the rate limit."""
        ...


@dataclass(frozen=True)
class AimdSettings:
    floor: int = 1
    ceiling: int = int(CANVAS_HIGH_WATER // CANVAS_PRE_FLIGHT_PENALTY) - IN_FLIGHT_MARGIN
    grow_at_or_above_remaining: float = 3 * CANVAS_PRE_FLIGHT_PENALTY
    shrink_below_remaining: float = 2 * CANVAS_PRE_FLIGHT_PENALTY
    shrink_factor: float = 0.75
    throttle_factor: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.floor <= self.ceiling:
            raise ValueError("need 1 <= floor <= ceiling")
        if not 0 < self.throttle_factor <= self.shrink_factor < 1:
            raise ValueError("need 0 < throttle_factor <= shrink_factor < 1")
        if self.shrink_below_remaining > self.grow_at_or_above_remaining:
            raise ValueError("need shrink_below_remaining <= grow_at_or_above_remaining")


class AimdLimit:
    """The in-flight limit of one token (not thread-safe: its owner serializes the calls)."""

    def __init__(self, start: float, settings: AimdSettings | None = None) -> None:
        self.settings = settings or AimdSettings()
        self._limit = self._bounded(start)
        # Answers to let through before decreasing again: those of requests sent before the last decrease
        # still report the old load, and must not cut the limit a second time for the same cause.
        self._answers_before_next_decrease = 0

    @property
    def limit(self) -> int:
        return math.floor(self._limit)

    def observe(self, remaining: float) -> None:
        settings = self.settings
        if self._answers_before_next_decrease > 0:
            self._answers_before_next_decrease -= 1
        if remaining >= settings.grow_at_or_above_remaining:
            # +1 over a round of answers (one per request in flight): additive increase
            self._limit = self._bounded(self._limit + 1 / self._limit)
        elif remaining < settings.shrink_below_remaining and self._answers_before_next_decrease == 0:
            self._decrease(settings.shrink_factor)

    def throttled(self) -> None:
        self._decrease(self.settings.throttle_factor)

    def adopt(self, limit: float) -> None:
        """Take `limit` (another holder's view of the same token) as the current limit."""
        self._limit = self._bounded(limit)

    def _decrease(self, factor: float) -> None:
        before = self.limit
        self._limit = self._bounded(self._limit * factor)
        self._answers_before_next_decrease = before

    def _bounded(self, value: float) -> float:
        return min(float(self.settings.ceiling), max(float(self.settings.floor), value))
