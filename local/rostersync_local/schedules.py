"""EventBridge schedules as timers; `rate(...)` fires on its own, any schedule can be fired now."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from rostersync_local.functions import Invocation
from rostersync_local.template import ScheduleSpec

logger = logging.getLogger("rostersync_local.schedules")
_RATE = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    found = _RATE.fullmatch(expression.strip())
    if not found:
        return None
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2).rstrip("s")]


class ScheduleTimers:
    def __init__(self, schedules: dict[str, ScheduleSpec], invoke: Callable[[str, Any], Invocation]) -> None:
        self._schedules = schedules
        self._invoke = invoke
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def fire(self, logical_id: str) -> Invocation:
        schedule = self._schedules[logical_id]
        # EventBridge Scheduler delivers the target's Input as the event itself.
        event = json.loads(schedule.input) if schedule.input else {}
        return self._invoke(schedule.function, event)

    def start(self) -> None:
        for logical_id, schedule in self._schedules.items():
            interval = rate_seconds(schedule.expression)
            if not schedule.enabled or interval is None:
                logger.info("schedule %s (%s) fires only on demand locally", logical_id, schedule.expression)
                continue
            thread = threading.Thread(target=self._run, args=(logical_id, interval), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, logical_id: str, interval: int) -> None:
        while not self._stop.wait(interval):
            invocation = self.fire(logical_id)
            if invocation.error:
                logger.warning("schedule %s: %s", logical_id, invocation.error.get("errorMessage"))

    def stop(self) -> None:
        self._stop.set()
