"""Request throttling: Canvas's leaky bucket (``app/middleware/request_throttle.rb``).

Canvas keeps one leaky bucket per credential (per access token grant for OAuth). Before a request runs the
bucket leaks ``elapsed * leak rate`` (never below 0); if its level is above the high-water mark the request
is refused (403 "Rate Limit Exceeded", or 429 in the public docs' wording) without running. Otherwise the
request adds an up-front cost while it is in flight; when it finishes the up-front cost is refunded and its
real cost added (the level never goes above the maximum). ``X-Rate-Limit-Remaining`` is
``high-water - level``.

What a request costs is the simulator's model (:meth:`~.config.SimulatorConfig.request_cost`). Canvas's
throttling documentation (``doc/api/throttling.md`` in instructure/canvas-lms) says, in short: the cost of a
request is roughly the time the server spent on it; the quota refills faster than real time, so a client
that never has more than one request running at once is unlikely ever to be throttled; requests running in
parallel each hold a pre-flight penalty until they finish, when it is credited back and only the real cost
stays. Canvas's defaults are a high-water mark of 600, a leak of 10 per second and a pre-flight penalty of
50: about 600 / 50 = 12 requests of one token in flight at once, and at most 10 server-seconds of work per
second sustained. The "documented" cost model charges exactly that (server seconds: the latency slept plus
a small per-item CPU term); the "stress" model keeps the older, far dearer price per request and item.

:class:`LeakyBucketThrottle` reads its parameters from a live
:class:`~rostersync_local.canvas_sim.config.SimulatorConfig` (so ``POST /_sim/config`` changes apply at once)
and behaves like :class:`UnlimitedThrottle` while ``config.throttle`` is off. Callers hold the state lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .config import SimulatorConfig

HIGH_WATER_MARK = 600.0


class Throttle(Protocol):
    def admit(self, credential: str, now: float) -> bool:
        """Called before a request runs; ``False`` means answer with the throttled response."""
        ...

    def finish(self, credential: str, cost: float, now: float) -> float:
        """Called after the request ran with its cost; returns the new ``X-Rate-Limit-Remaining``."""
        ...


class UnlimitedThrottle:
    """Never throttles."""

    def admit(self, credential: str, now: float) -> bool:
        return True

    def finish(self, credential: str, cost: float, now: float) -> float:
        return HIGH_WATER_MARK


@dataclass
class Bucket:
    level: float = 0.0
    touched_at: float = 0.0
    in_flight: int = 0

    def leak(self, now: float, rate: float) -> None:
        elapsed = max(0.0, now - self.touched_at)
        self.level = max(0.0, self.level - elapsed * rate)
        self.touched_at = max(self.touched_at, now)


class LeakyBucketThrottle:
    """One :class:`Bucket` per credential, parameters from ``config`` (``config.throttle`` switches it on)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.buckets: dict[str, Bucket] = {}

    def _bucket(self, credential: str, now: float) -> Bucket:
        bucket = self.buckets.get(credential)
        if bucket is None:
            bucket = self.buckets[credential] = Bucket(touched_at=now)
        bucket.leak(now, self.config.throttle_leak_per_second)
        return bucket

    def admit(self, credential: str, now: float) -> bool:
        config = self.config
        if not config.throttle:
            return True
        bucket = self._bucket(credential, now)
        if bucket.level > config.throttle_high_water:
            return False
        bucket.level += config.throttle_up_front_cost
        bucket.in_flight += 1
        return True

    def finish(self, credential: str, cost: float, now: float) -> float:
        config = self.config
        bucket = self.buckets.get(credential)
        if bucket is None and not config.throttle:
            return config.throttle_high_water
        bucket = self._bucket(credential, now)
        if bucket.in_flight > 0:  # admitted while the throttle was on: refund the up-front cost
            bucket.in_flight -= 1
            bucket.level = max(0.0, bucket.level - config.throttle_up_front_cost)
        if not config.throttle:
            return config.throttle_high_water
        bucket.level = min(bucket.level + cost, config.throttle_maximum)
        return max(0.0, config.throttle_high_water - bucket.level)

    def reset(self) -> None:
        self.buckets.clear()
