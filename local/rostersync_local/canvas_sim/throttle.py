"""Request throttling: the single place where a Canvas-style leaky bucket plugs in.

Canvas keeps one leaky bucket per credential (per access token for OAuth): every request pays an up-front
cost while in flight and its real cost when done; the bucket leaks at a fixed rate and requests are refused
(403 "Rate Limit Exceeded") once it is above the high-water mark. The simulator currently never throttles;
:class:`UnlimitedThrottle` only reports a constant ``X-Rate-Limit-Remaining``. A real bucket implements
:class:`Throttle` and is passed to :class:`~rostersync_local.canvas_sim.state.SimulatorState`.
"""

from __future__ import annotations

from typing import Protocol

HIGH_WATER_MARK = 600.0


class Throttle(Protocol):
    def admit(self, credential: str, now: float) -> bool:
        """Called before a request runs; ``False`` means answer with the throttled response."""
        ...

    def finish(self, credential: str, cost: float, now: float) -> float:
        """Called after the request ran with its cost; returns the new ``X-Rate-Limit-Remaining``."""
        ...


class UnlimitedThrottle:
    """Never throttles (the default)."""

    def admit(self, credential: str, now: float) -> bool:
        return True

    def finish(self, credential: str, cost: float, now: float) -> float:
        return HIGH_WATER_MARK
