"""`make demo`: the whole roster sync on the embedded local stack, checked against Canvas's truth.

Starts moto's server, the Canvas simulator and the template's functions; registers a developer key
in the simulator; adds a tenant and authorizes it with the CLI (following redirects, as a browser
would); runs a full sync through the real queues; exports the roster and compares it with the
simulator's ground truth; syncs again to show that an unchanged Canvas writes nothing; stops it all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import requests

from rostersync.sync.reports import roster_totals
from rostersync_local.canvas_sim.config import COST_MODELS
from rostersync_local.control import REPO_ROOT, start_stack, stop_stack
from rostersync_local.harness import cli, connect_tenant, say, sync
from rostersync_local.truth import differences, expected_export, minimum_requests, totals


def run_demo(
    state_dir: Path,
    seed: int,
    courses: int,
    canvas_conditions: dict[str, Any],
    canvas_cost: str = "documented",
) -> int:
    stop_stack(state_dir)  # a stack left over from an interrupted demo
    started = time.monotonic()
    say("1. starting the local stack: moto server (AWS), Canvas simulator, functions from template.yaml")
    state = start_stack(state_dir, seed=seed, courses=courses, canvas_cost=canvas_cost)
    try:
        canvas_url, api_url = state["canvas_url"], state["api_url"]
        say(f"   api {api_url}  aws {state['aws_endpoint_url']}  canvas {canvas_url}")
        tenant_id = connect_tenant(state_dir, canvas_url, api_url)
        if canvas_conditions:
            requests.post(f"{canvas_url}/_sim/config", json=canvas_conditions, timeout=10).raise_for_status()
            say(f"   Canvas conditions from now on: {json.dumps(canvas_conditions)}")
        requests.post(f"{canvas_url}/_sim/stats/reset", timeout=10)
        say("4. full sync through the queues (planner -> one message per course -> workers)")
        sync_started = time.monotonic()
        first = sync(state_dir, tenant_id)
        sync_seconds = time.monotonic() - sync_started
        canvas_requests = requests.get(f"{canvas_url}/_sim/stats", timeout=10).json()["requests_total"]
        say("5. exporting the roster and checking it against the simulator's ground truth")
        export = json.loads(cli(state_dir, "roster", "export", "--tenant", tenant_id, "--format", "json"))
        truth = requests.get(f"{canvas_url}/_sim/ground_truth", timeout=30).json()
        expected = expected_export(truth, user_id_field="email")
        problems = differences(export, expected)
        say("6. syncing again: an unchanged Canvas must write nothing")
        second = sync(state_dir, tenant_id, "--force")  # an operator may skip the sync-now cooldown
        written = sum(second["changes"][kind] for kind in ("created", "updated", "dropped"))
        exported = roster_totals(export)
        say("")
        say("summary")
        in_canvas = len(truth["courses"])
        say(f"  courses synced      {exported['courses']} (of {in_canvas} in Canvas; published only)")
        say(f"  sections            {exported['sections']}")
        say(f"  users               {exported['users']}")
        active = totals(expected)["active_enrollments"]
        say(f"  enrollments         {exported['enrollments']} ({active} active)")
        lower_bound = minimum_requests(truth, with_email=True)
        say(f"  Canvas requests     {canvas_requests} in the first sync (fewest possible: {lower_bound})")
        say(
            f"  throttled / retries {first['canvas_throttled']} / {first['canvas_retries']} in the first sync"
        )
        say(f"  first sync          {sync_seconds:.1f} s; items written {first['changes']['created']}")
        say(f"  second sync         items written {written}, unchanged {second['changes']['unchanged']}")
        say(f"  elapsed             {time.monotonic() - started:.1f} s")
        for problem in problems:
            say(f"  MISMATCH {problem}")
        if written:
            say("  the second sync wrote items although Canvas did not change")
        if problems or written:
            return 1
        say("  export matches the simulator's ground truth (courses, sections, users, enrollments)")
        return 0
    finally:
        stop_stack(state_dir)
        say("local stack stopped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--courses", type=int, default=70)
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".rostersync" / "demo")
    hard = parser.add_argument_group("a harder Canvas (simulator settings applied after connecting)")
    hard.add_argument("--throttle", action="store_true", help="Canvas's leaky bucket (high-water 600)")
    hard.add_argument("--fault-rate", type=float, default=0.0, help="share of API requests answering 500")
    hard.add_argument("--latency-ms", type=int, default=0)
    hard.add_argument("--latency-jitter-ms", type=int, default=0)
    hard.add_argument(
        "--canvas-cost",
        choices=COST_MODELS,
        default="documented",
        help="a request's cost: its server time, as Canvas charges (default), or the dearer 'stress' profile",
    )
    arguments = parser.parse_args()
    conditions = {
        name: value
        for name, value in {
            "throttle": arguments.throttle,
            "fault_rate": arguments.fault_rate,
            "latency_ms": arguments.latency_ms,
            "latency_jitter_ms": arguments.latency_jitter_ms,
        }.items()
        if value
    }
    try:
        return run_demo(
            arguments.state_dir, arguments.seed, arguments.courses, conditions, arguments.canvas_cost
        )
    except (RuntimeError, TimeoutError, requests.RequestException) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
