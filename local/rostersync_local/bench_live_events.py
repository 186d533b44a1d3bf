"""Benchmark (not a test): how long from a change in Canvas to the roster item in DynamoDB.

Starts the local stack, connects a tenant and syncs it, points the simulator's live events at the
stack's queue, then enrolls N new students one at a time and measures, for each, the time from the
simulator's change to the enrollment item appearing in DynamoDB (polled every 20 ms).
Run: make bench-live-events [ARGS="--events 100"].
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from rostersync_local.control import REPO_ROOT, start_stack, stop_stack
from rostersync_local.harness import connect_tenant, live_event_latencies, percentile, sync


def run(state_dir: Path, events: int, courses: int) -> int:
    stop_stack(state_dir)
    state = start_stack(state_dir, courses=courses)
    try:
        tenant_id = connect_tenant(state_dir, state["canvas_url"], state["api_url"])
        sync(state_dir, tenant_id)
        try:
            latencies, course_count = live_event_latencies(state, tenant_id, events)
        except TimeoutError as error:
            print(error)
            return 1
        print(f"live events applied: {len(latencies)} (one enrollment each, {course_count} courses)")
        print(f"  p50 {percentile(latencies, 0.50):.2f} s   p95 {percentile(latencies, 0.95):.2f} s   "
              f"max {max(latencies):.2f} s   mean {statistics.mean(latencies):.2f} s")  # fmt: skip
        return 0
    finally:
        stop_stack(state_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--courses", type=int, default=20)
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".rostersync" / "bench")
    arguments = parser.parse_args()
    return run(arguments.state_dir, arguments.events, arguments.courses)


if __name__ == "__main__":
    raise SystemExit(main())
