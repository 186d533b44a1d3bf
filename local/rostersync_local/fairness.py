"""Fairness between tenants that share the course queue: a measurement on the local stack, and a model.

The measurement (``python -m rostersync_local.fairness``): three tenants, one large (``--big``
enrollments, the whole simulated institution) and two small (``--small-courses`` courses each, a sync
list), synced on the local stack first each alone, then the three at once. It reports each small
tenant's sync time at once against alone (goal: within 2x), and writes a JSON report under
.rostersync/fairness/. Each phase uses tenants of its own (a first sync each time, never a re-sync),
each tenant its own developer key (its own token, so its own Canvas throttle bucket).

The model (:func:`simulate`; a discrete-event simulation, no Canvas, no AWS, used by ``make bench``)
of many tenants sharing the course queue. What it models, after the stack in template.yaml:

- A schedule tick asks every tenant for a full sync at time 0. Planners (``planners`` at a time, in a
  random tenant order) list each tenant's courses, which takes ``plan_seconds_per_page`` per page of
  100 courses, and then put one message per course on the course queue.
- ``workers`` Lambda executions poll the queue; each receives up to ``batch_size`` messages and syncs
  them one after the other (the worker reads a batch's courses from Canvas at once and writes them one
  after another; the model, simpler, overstates a batch's time). A course needs one of its tenant's
  ``tenant_cap`` Canvas slots: a worker whose course finds every slot busy waits for one (holding its
  execution, as ``canvas_slot`` does) up to ``slot_wait_seconds``; after that the message fails and
  comes back after ``retry_seconds``.
- A course takes ``course_seconds`` (lognormal around it, ``course_seconds_sigma``), whatever the
  tenant: each tenant has its own Canvas and its own throttle, so tenants do not slow each other
  down in Canvas; they compete only for the workers.
- Delivery order: ``"fifo"`` is a plain standard queue (oldest message first, no notion of tenants);
  ``"fair"`` is an SQS fair queue (MessageGroupId = tenant): a receive prefers the tenant with the
  fewest messages in flight, oldest message first among equals.

A tenant's completion time is when its last course finished. :func:`simulate` returns them.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import itertools
import json
import math
import random
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from rostersync_local.control import REPO_ROOT, start_stack, stop_stack
from rostersync_local.harness import cli, connect_tenant, developer_key, say, sync


@dataclass(frozen=True)
class ModelSettings:
    workers: int = 4
    batch_size: int = 5
    tenant_cap: int = 3
    course_seconds: float = 1.0
    course_seconds_sigma: float = 0.3
    planners: int = 4
    plan_seconds_per_page: float = 0.1
    slot_wait_seconds: float = 60.0
    retry_seconds: float = 60.0
    seed: int = 11


@dataclass
class TenantOutcome:
    tenant: int
    courses: int
    planned_at: float = 0.0
    finished_at: float = 0.0
    remaining: int = 0


def mixed_tenant_sizes(count: int = 100, seed: int = 5) -> list[int]:
    """Course counts of ``count`` tenants: 60 % small (5-40), 30 % medium (50-300), 10 % large (500-1500)."""
    rng = random.Random(seed)  # noqa: S311 - a seeded model, not cryptography
    sizes: list[int] = []
    for index in range(count):
        share = index / count
        if share < 0.6:
            sizes.append(rng.randint(5, 40))
        elif share < 0.9:
            sizes.append(rng.randint(50, 300))
        else:
            sizes.append(rng.randint(500, 1500))
    rng.shuffle(sizes)
    return sizes


@dataclass(order=True)
class _Event:
    time: float
    order: int
    kind: str = field(compare=False)
    data: Any = field(compare=False, default=None)


class _Queue:
    """The course queue: visible messages by tenant, in arrival order."""

    def __init__(self, fair: bool) -> None:
        self.fair = fair
        self.fifo: deque[tuple[int, int]] = deque()  # (arrival order, tenant)
        self.by_tenant: dict[int, deque[int]] = {}
        self.in_flight: dict[int, int] = {}
        self.visible = 0

    def put(self, order: int, tenant: int) -> None:
        self.visible += 1
        if self.fair:
            self.by_tenant.setdefault(tenant, deque()).append(order)
        else:
            self.fifo.append((order, tenant))

    def take(self) -> int | None:
        if not self.visible:
            return None
        self.visible -= 1
        if not self.fair:
            tenant = self.fifo.popleft()[1]
        else:
            tenant = min(
                (t for t, waiting in self.by_tenant.items() if waiting),
                key=lambda t: (self.in_flight.get(t, 0), self.by_tenant[t][0]),
            )
            self.by_tenant[tenant].popleft()
        self.in_flight[tenant] = self.in_flight.get(tenant, 0) + 1
        return tenant

    def done(self, tenant: int) -> None:
        self.in_flight[tenant] -= 1


class _Model:
    def __init__(self, sizes: list[int], settings: ModelSettings, fair: bool) -> None:
        self.sizes = sizes
        self.settings = settings
        self.rng = random.Random(settings.seed)  # noqa: S311 - a seeded model, not cryptography
        self.mu = math.log(settings.course_seconds) - settings.course_seconds_sigma**2 / 2
        self.tenants = [TenantOutcome(index, size, remaining=size) for index, size in enumerate(sizes)]
        self.counter = itertools.count()
        self.events: list[_Event] = []
        self.queue = _Queue(fair)
        self.slots_busy = [0] * len(sizes)
        self.slot_waiters: list[deque[tuple[int, float]]] = [deque() for _ in sizes]  # (worker, gives up at)
        self.idle_workers = list(range(settings.workers))
        self.batches: dict[int, deque[int]] = {}  # per worker: its received messages' tenants

    def at(self, time: float, kind: str, data: Any = None) -> None:
        heapq.heappush(self.events, _Event(time, next(self.counter), kind, data))

    def course_time(self) -> float:
        return self.rng.lognormvariate(self.mu, self.settings.course_seconds_sigma)

    def plan(self) -> None:
        """The tick's sync requests, in a random tenant order, ``planners`` at a time."""
        order = list(range(len(self.sizes)))
        self.rng.shuffle(order)
        planner_free = [0.0] * self.settings.planners
        for tenant in order:
            start = heapq.heappop(planner_free)
            end = start + self.settings.plan_seconds_per_page * max(1, -(-self.sizes[tenant] // 100))
            heapq.heappush(planner_free, end)
            self.at(end, "planned", tenant)

    def start_next(self, worker: int, now: float) -> None:
        """The worker's next course of its batch, or a new receive, or idle."""
        batch = self.batches.get(worker)
        if batch:  # its head is the course being synced; it leaves the batch when done or failed
            tenant = batch[0]
            if self.slots_busy[tenant] < self.settings.tenant_cap:
                self.slots_busy[tenant] += 1
                self.at(now + self.course_time(), "course_done", (worker, tenant))
            else:
                self.slot_waiters[tenant].append((worker, now + self.settings.slot_wait_seconds))
                self.at(now + self.settings.slot_wait_seconds, "slot_timeout", (worker, tenant))
            return
        received: deque[int] = deque()
        while len(received) < self.settings.batch_size:
            tenant_or_none = self.queue.take()
            if tenant_or_none is None:
                break
            received.append(tenant_or_none)
        if not received:
            self.idle_workers.append(worker)
            return
        self.batches[worker] = received
        self.start_next(worker, now)

    def wake_idle(self, now: float) -> None:
        while self.idle_workers and self.queue.visible:
            self.start_next(self.idle_workers.pop(), now)

    def course_done(self, worker: int, tenant: int, now: float) -> None:
        self.queue.done(tenant)
        self.slots_busy[tenant] -= 1
        outcome = self.tenants[tenant]
        outcome.remaining -= 1
        if outcome.remaining == 0:
            outcome.finished_at = now
        self.batches[worker].popleft()
        waiters = self.slot_waiters[tenant]
        if waiters:  # a worker waiting for this tenant's slot takes it
            waiting_worker, _ = waiters.popleft()
            self.slots_busy[tenant] += 1
            self.at(now + self.course_time(), "course_done", (waiting_worker, tenant))
        self.start_next(worker, now)

    def slot_timeout(self, worker: int, tenant: int, now: float) -> None:
        waiters = self.slot_waiters[tenant]
        entry = next((w for w in waiters if w[0] == worker and w[1] == now), None)
        if entry is not None:  # still waiting: the message fails and comes back later
            waiters.remove(entry)
            self.batches[worker].popleft()
            self.queue.done(tenant)
            self.at(now + self.settings.retry_seconds, "retry_visible", tenant)
            self.start_next(worker, now)

    def run(self) -> list[TenantOutcome]:
        self.plan()
        while self.events:
            event = heapq.heappop(self.events)
            now = event.time
            if event.kind == "planned":
                self.tenants[event.data].planned_at = now
                for _ in range(self.sizes[event.data]):
                    self.queue.put(next(self.counter), event.data)
                self.wake_idle(now)
            elif event.kind == "retry_visible":
                self.queue.put(next(self.counter), event.data)
                self.wake_idle(now)
            elif event.kind == "course_done":
                worker, tenant = event.data
                self.course_done(worker, tenant, now)
            elif event.kind == "slot_timeout":
                worker, tenant = event.data
                self.slot_timeout(worker, tenant, now)
        return self.tenants


def simulate(sizes: list[int], settings: ModelSettings, *, fair: bool) -> list[TenantOutcome]:
    """Run the model; one outcome per tenant (same order as ``sizes``)."""
    return _Model(sizes, settings, fair).run()


def spread(outcomes: list[TenantOutcome], *, small_courses: int = 40) -> dict[str, Any]:
    """Completion-time statistics: all tenants, small ones, and slowdown against running alone."""

    def stats(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)

        def pick(share: float) -> float:
            return round(ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))], 1)

        return {"min": pick(0.0), "p50": pick(0.5), "p95": pick(0.95), "max": pick(1.0)}

    finish = [outcome.finished_at for outcome in outcomes]
    small = [outcome.finished_at for outcome in outcomes if outcome.courses <= small_courses]
    return {
        "completion_seconds": stats(finish),
        "small_tenants": len(small),
        "small_tenant_completion_seconds": stats(small) if small else {},
        "makespan_seconds": round(max(finish), 1),
    }


# ------------------------------------------------------------------- the measurement on the stack
SMALL_TENANTS = ("Small A", "Small B")
GOAL_RATIO = 2.0


@dataclass(frozen=True)
class StackTenants:
    """Where the measurement's tenants are: the stack, and the published courses of its Canvas."""

    state_dir: Path
    canvas_url: str
    api_url: str
    published: list[int]


def _connect(stack: StackTenants, name: str, sync_list: list[int] | None) -> str:
    """A tenant with a developer key of its own; with ``sync_list``, it syncs only those courses."""
    key = developer_key(stack.canvas_url, stack.api_url, f"fairness {name}")
    tenant_id = connect_tenant(
        stack.state_dir, stack.canvas_url, stack.api_url, name=name, user_id_field=None, key=key,
        echo=lambda _: None,
    )  # fmt: skip
    if sync_list is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".csv", newline="", delete=False) as listing:
            csv.writer(listing).writerows([[course] for course in sync_list])
        try:
            cli(stack.state_dir, "courses", "import", "--tenant", tenant_id, "--mode", "replace", "--yes",
                listing.name)  # fmt: skip
        finally:
            Path(listing.name).unlink()
    return tenant_id


def _timed_sync(stack: StackTenants, tenant_id: str) -> dict[str, Any]:
    """A full sync through the queues (``sync run --wait``): the seconds from asking for it to its last
    course (what the tenant waits, the planner's queue included), the run's own seconds (planned to
    done), its courses and failed courses."""
    asked_at = datetime.now(UTC)
    summary = sync(stack.state_dir, tenant_id, "--force", "--timeout", "7200", echo=None, check=False)
    run = summary["run"]
    finished_at = datetime.fromisoformat(run["finished_at"]) if run.get("finished_at") else None
    return {
        "seconds": round((finished_at - asked_at).total_seconds(), 2) if finished_at else None,
        "run_seconds": (
            round((finished_at - datetime.fromisoformat(run["started_at"])).total_seconds(), 2)
            if finished_at
            else None
        ),
        "courses": run["courses_total"],
        "courses_failed": summary["courses_failed"],
    }


def _small_lists(published: list[int], courses: int) -> list[list[int]]:
    """Two disjoint sets of ``courses`` published courses, spread over the institution."""
    step = max(1, len(published) // (2 * courses))
    spread_out = published[::step]
    if len(spread_out) < 2 * courses:
        raise ValueError(f"the institution has too few published courses for 2 x {courses}")
    return [spread_out[:courses], spread_out[courses : 2 * courses]]


def _ratio(at_once: float | None, alone: float | None) -> float | None:
    return round(at_once / alone, 2) if at_once is not None and alone else None


def measure_three_tenants(stack: StackTenants, small_courses: int) -> dict[str, Any]:
    """Each small tenant synced alone, then a large and both small tenants at once (new tenants)."""
    lists = _small_lists(stack.published, small_courses)
    say("== warming the functions up (a tenant of one course)")
    _timed_sync(stack, _connect(stack, "Warm-up", lists[0][:1]))
    say(f"== alone: {len(SMALL_TENANTS)} small tenants of {small_courses} courses, one after the other")
    alone = {}
    for name, courses in zip(SMALL_TENANTS, lists, strict=True):
        alone[name] = _timed_sync(stack, _connect(stack, f"{name} (alone)", courses))
        say(f"   {name}: {alone[name]['seconds']} s")
    say("== at once: the large tenant (every course) and both small tenants")
    big_id = _connect(stack, "Big", None)
    small_ids = {
        name: _connect(stack, f"{name} (at once)", c) for name, c in zip(SMALL_TENANTS, lists, strict=True)
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        big_future = pool.submit(_timed_sync, stack, big_id)
        futures = {name: pool.submit(_timed_sync, stack, tenant_id) for name, tenant_id in small_ids.items()}
        together = {name: future.result() for name, future in futures.items()}
        big = big_future.result()
    for name in SMALL_TENANTS:
        say(f"   {name}: {together[name]['seconds']} s")
    say(f"   Big: {big['seconds']} s, {big['courses']} courses")
    ratios = {name: _ratio(together[name]["seconds"], alone[name]["seconds"]) for name in SMALL_TENANTS}
    return {
        "small_courses": small_courses,
        "alone": alone,
        "at_once": {**together, "Big": big},
        "small_tenant_ratio": ratios,
        "goal_ratio": GOAL_RATIO,
        "within_goal": all(ratio is not None and ratio <= GOAL_RATIO for ratio in ratios.values()),
        "failed_courses": sum(r["courses_failed"] for r in [*alone.values(), *together.values(), big]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Three tenants (one large, two small) synced at once on the local stack, against alone."
    )
    parser.add_argument("--big", type=int, default=20_000, help="the large tenant's enrollments")
    parser.add_argument("--small-courses", type=int, default=10, help="each small tenant's courses")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--latency-jitter-ms", type=float, default=20.0)
    parser.add_argument("--no-throttle", action="store_true", help="turn Canvas's leaky bucket off")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / ".rostersync" / "fairness")
    arguments = parser.parse_args()
    # The bench imports this module's model: its sizing is imported here, when measuring.
    from rostersync_local.bench import courses_for

    courses, enrollments = courses_for(arguments.big, arguments.seed)
    state_dir: Path = arguments.out_dir / "stack"
    stop_stack(state_dir)
    say(f"== starting the local stack: {courses} courses, {enrollments:,} enrollments")
    quiet_schedule = {"SyncScheduleExpression": "rate(1 day)"}
    state = start_stack(
        state_dir,
        seed=arguments.seed,
        courses=courses,
        parameter_overrides=quiet_schedule,
        timeout_seconds=300,
    )
    try:
        canvas_url = state["canvas_url"]
        truth = requests.get(f"{canvas_url}/_sim/ground_truth", timeout=120).json()
        published = sorted(c["id"] for c in truth["courses"] if c["workflow_state"] == "available")
        conditions = {
            "latency_ms": arguments.latency_ms,
            "latency_jitter_ms": arguments.latency_jitter_ms,
            "throttle": not arguments.no_throttle,
        }
        requests.post(f"{canvas_url}/_sim/config", json=conditions, timeout=30).raise_for_status()
        stack = StackTenants(state_dir, canvas_url, state["api_url"], published)
        report = {
            "big_enrollments": enrollments,
            "big_courses_generated": courses,
            "canvas_conditions": conditions,
            **measure_three_tenants(stack, arguments.small_courses),
        }
    finally:
        stop_stack(state_dir)
    arguments.out_dir.mkdir(parents=True, exist_ok=True)
    path = arguments.out_dir / f"fairness-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    say(f"small tenants at once / alone: {report['small_tenant_ratio']} (goal <= {GOAL_RATIO})")
    say(str(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
