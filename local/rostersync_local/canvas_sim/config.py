"""Configuration of the Canvas simulator."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class SimulatorConfig:
    """Settings for one simulator instance.

    ``reference_year`` anchors the generated dates (terms, created_at...). ``None`` means the current UTC
    year, so the "current" term always contains today; pass a year for data that never changes.
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

    def __post_init__(self) -> None:
        if self.courses < 1:
            raise ValueError("courses must be >= 1")
        if self.token_ttl_seconds < 0:
            raise ValueError("token_ttl_seconds must be >= 0")
        if not 1 <= self.default_per_page <= self.max_per_page:
            raise ValueError("need 1 <= default_per_page <= max_per_page")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
