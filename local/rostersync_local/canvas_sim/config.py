"""Configuration of the Canvas simulator."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

THROTTLE_STYLES = ("403", "429")
# "documented": a request costs its server time, as Canvas's throttling documentation describes;
# "stress": a fixed price per request and per listed item, far dearer (see the class doc).
COST_MODELS = ("documented", "stress")
LIVE_EVENT_FORMATS = ("canvas", "caliper")
NON_NEGATIVE_FIELDS = (
    "throttle_leak_per_second",
    "throttle_up_front_cost",
    "request_cost_base",
    "request_cost_per_item",
    "cpu_seconds_per_item",
    "latency_ms",
    "latency_jitter_ms",
    "timeout_stall_seconds",
)


@dataclass
class SimulatorConfig:
    """Settings for one simulator instance.

    ``reference_year`` anchors the generated dates (terms, created_at...). ``None`` means the current UTC
    year, so the "current" term always contains today; pass a year for data that never changes.

    Throttling (Canvas's ``request_throttle.rb`` leaky bucket, one bucket per access-token grant) is off by
    default. When ``throttle`` is on, a request is refused while its bucket is above ``throttle_high_water``;
    an admitted request holds ``throttle_up_front_cost`` while in flight and then pays its real cost (the
    level never exceeds ``throttle_maximum``); the bucket leaks ``throttle_leak_per_second``.
    ``throttle_style`` "403" answers like the Canvas source, "429" like the current public docs.

    A request's real cost (``X-Request-Cost``, whether or not the throttle is on) follows ``cost_model``:

    - "documented" (the default): its server time in seconds, as Canvas charges it - the latency the
      simulator sleeps for it plus ``cpu_seconds_per_item`` per item of the returned list. With Canvas's
      defaults (high-water 600, leak 10/s, up-front 50) one client making one request at a time never
      fills the bucket (it spends at most one server second per second), and about
      high-water / up-front = 12 requests may be in flight at once before the 13th is refused;
    - "stress": ``request_cost_base + request_cost_per_item * <items>`` (1 + 0.02 per item: about 3 for a
      100-row page that takes 50-70 ms), far dearer than Canvas, so even a sequential client is throttled
      and a sync's speed is bounded by its total cost over the leak rate (a stress profile).

    ``latency_ms`` + uniform ``0..latency_jitter_ms`` delay every ``/api/v1`` request. ``fault_rate``,
    ``timeout_rate`` and ``reset_rate`` are the shares of ``/api/v1`` requests that answer a Canvas 500,
    stall ``timeout_stall_seconds`` before being answered, or have their connection closed without any
    response. The random draws come from ``random.Random(fault_seed)`` (``None`` = ``seed``).

    Live events (emitted by the ``/_sim/changes/*`` admin endpoints; see :mod:`.live_events`) go to the SQS
    queue ``live_events_sqs_queue_url`` (boto3, endpoint ``live_events_aws_endpoint_url``) and/or are POSTed
    to ``live_events_http_url`` (a JWS signed with the simulator's RSA key when ``live_events_signed``), in
    ``live_events_format`` ("canvas" or "caliper"). ``live_events_loss_rate`` drops a share of events,
    ``live_events_duplicate_rate`` sends a share twice, ``live_events_reorder_window`` > 1 buffers that many
    deliveries and releases them shuffled; the draws come from ``random.Random(live_events_seed)``
    (``None`` = ``seed``). ``live_events_hostname`` (``None`` = the Host of the admin request) is the
    ``hostname`` of the events. A failed send (SQS or HTTP) is retried ``live_events_retries`` times,
    after ``live_events_retry_backoff_seconds`` * 2**try; an HTTP try waits up to
    ``live_events_http_timeout_seconds`` (Canvas: 15 s, 3 retries over 10-20 minutes).
    """

    seed: int = 7
    courses: int = 60
    host: str = "127.0.0.1"
    port: int = 0
    auto_approve: bool = True
    token_ttl_seconds: int = 3600
    default_per_page: int = 10
    max_per_page: int = 100
    reference_year: int | None = None
    # throttling
    throttle: bool = False
    throttle_high_water: float = 600.0
    throttle_maximum: float = 800.0
    throttle_leak_per_second: float = 10.0
    throttle_up_front_cost: float = 50.0
    throttle_style: str = "403"
    cost_model: str = "documented"
    cpu_seconds_per_item: float = 0.0001
    request_cost_base: float = 1.0
    request_cost_per_item: float = 0.02
    # latency and random faults
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    fault_rate: float = 0.0
    timeout_rate: float = 0.0
    reset_rate: float = 0.0
    timeout_stall_seconds: float = 30.0
    fault_seed: int | None = None
    # live events
    live_events_sqs_queue_url: str | None = None
    live_events_aws_endpoint_url: str | None = None
    live_events_http_url: str | None = None
    live_events_format: str = "canvas"
    live_events_signed: bool = False
    live_events_duplicate_rate: float = 0.0
    live_events_loss_rate: float = 0.0
    live_events_reorder_window: int = 0
    live_events_seed: int | None = None
    live_events_hostname: str | None = None
    live_events_http_timeout_seconds: float = 15.0
    live_events_retries: int = 3
    live_events_retry_backoff_seconds: float = 0.2

    def __post_init__(self) -> None:
        if self.courses < 1:
            raise ValueError("courses must be >= 1")
        if self.token_ttl_seconds < 0:
            raise ValueError("token_ttl_seconds must be >= 0")
        if not 1 <= self.default_per_page <= self.max_per_page:
            raise ValueError("need 1 <= default_per_page <= max_per_page")
        self.throttle_style = str(self.throttle_style)
        if self.throttle_style not in THROTTLE_STYLES:
            raise ValueError("throttle_style must be '403' or '429'")
        if self.cost_model not in COST_MODELS:
            raise ValueError("cost_model must be 'documented' or 'stress'")
        for name in NON_NEGATIVE_FIELDS:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0 < self.throttle_high_water <= self.throttle_maximum:
            raise ValueError("need 0 < throttle_high_water <= throttle_maximum")
        for name in ("fault_rate", "timeout_rate", "reset_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.fault_rate + self.timeout_rate + self.reset_rate > 1.0 + 1e-9:
            raise ValueError("fault_rate + timeout_rate + reset_rate must be <= 1")
        if self.live_events_format not in LIVE_EVENT_FORMATS:
            raise ValueError("live_events_format must be 'canvas' or 'caliper'")
        for name in ("live_events_duplicate_rate", "live_events_loss_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.live_events_reorder_window < 0 or self.live_events_retries < 0:
            raise ValueError("live_events_reorder_window and live_events_retries must be >= 0")
        if self.live_events_http_timeout_seconds <= 0 or self.live_events_retry_backoff_seconds < 0:
            raise ValueError(
                "need live_events_http_timeout_seconds > 0 and live_events_retry_backoff_seconds >= 0"
            )

    def request_cost(self, items: int, server_seconds: float) -> float:
        """What a request that listed ``items`` and ran ``server_seconds`` costs, under ``cost_model``."""
        if self.cost_model == "stress":
            return self.request_cost_base + self.request_cost_per_item * items
        return server_seconds + self.cpu_seconds_per_item * items

    @property
    def effective_live_events_seed(self) -> int:
        return self.seed if self.live_events_seed is None else self.live_events_seed

    @property
    def effective_fault_seed(self) -> int:
        return self.seed if self.fault_seed is None else self.fault_seed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
