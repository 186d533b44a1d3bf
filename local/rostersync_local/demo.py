"""`make demo`: the whole roster sync on the embedded local stack, checked against Canvas's truth.

Starts moto's server, the Canvas simulator and the template's functions; registers a developer key
in the simulator; adds a tenant and authorizes it with the CLI (following redirects, as a browser
would); runs a full sync through the real queues; exports the roster and compares it with the
simulator's ground truth; syncs again to show that an unchanged Canvas writes nothing; stops it all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from rostersync_local.control import REPO_ROOT, start_stack, stop_stack
from rostersync_local.truth import differences, expected_export, minimum_requests, totals

CLI = [sys.executable, "-m", "rostersync_cli.main"]


def _say(message: str) -> None:
    print(message, flush=True)


def _cli(state_dir: Path, *arguments: str) -> str:
    environment = {**os.environ, "ROSTERSYNC_STATE_DIR": str(state_dir)}
    completed = subprocess.run(  # noqa: S603 - our own CLI
        [*CLI, *arguments], capture_output=True, text=True, env=environment, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"rostersync {' '.join(arguments[:2])} failed: {completed.stderr.strip()}")
    return completed.stdout.strip()


def _sync(state_dir: Path, tenant_id: str, *extra: str) -> dict[str, Any]:
    environment = {**os.environ, "ROSTERSYNC_STATE_DIR": str(state_dir)}
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [*CLI, "sync", "run", "--tenant", tenant_id, "--wait", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    assert process.stderr is not None and process.stdout is not None
    for line in process.stderr:
        _say(f"    {line.rstrip()}")
    output = process.stdout.read()
    if process.wait() != 0:
        raise RuntimeError("the sync run failed")
    summary: dict[str, Any] = json.loads(output)
    return summary


def _connect_tenant(state_dir: Path, canvas_url: str, api_url: str) -> str:
    key = requests.post(
        f"{canvas_url}/_sim/developer_keys",
        json={"name": "rostersync demo", "redirect_uri": f"{api_url}/oauth/callback"},
        timeout=10,
    ).json()
    _say(f"2. Canvas admin created developer key {key['client_id']} ({len(key['scopes'])} scopes)")
    tenant_id = _cli(
        state_dir, "tenant", "add", "--name", "Demo University", "--canvas-url", canvas_url,
        "--client-id", key["client_id"], "--client-secret", key["client_secret"],
        "--allow-insecure-canvas", "--user-id-field", "email",
    )  # fmt: skip
    _say(f"3. tenant {tenant_id} added; authorizing through Canvas's OAuth flow")
    start_url = _cli(state_dir, "tenant", "authorize", tenant_id)
    page = requests.get(start_url, timeout=30)  # follows the redirects, as a browser would
    if page.status_code != 200:
        raise RuntimeError(f"authorization failed ({page.status_code}): {page.text[:300]}")
    tenant = json.loads(_cli(state_dir, "tenant", "show", tenant_id))
    _say(f"   connected: status {tenant['status']}, root account {tenant['root_account_id']}")
    return tenant_id


def _exported_totals(export: dict[str, Any]) -> dict[str, int]:
    courses = export["courses"]
    return {
        "courses": len(courses),
        "sections": sum(len(course["sections"]) for course in courses),
        "users": len({user["canvas_id"] for course in courses for user in course["users"]}),
        "enrollments": sum(len(course["enrollments"]) for course in courses),
    }


def run_demo(state_dir: Path, seed: int, courses: int, canvas_conditions: dict[str, Any]) -> int:
    stop_stack(state_dir)  # a stack left over from an interrupted demo
    started = time.monotonic()
    _say("1. starting the local stack: moto server (AWS), Canvas simulator, functions from template.yaml")
    state = start_stack(state_dir, seed=seed, courses=courses)
    try:
        canvas_url, api_url = state["canvas_url"], state["api_url"]
        _say(f"   api {api_url}  aws {state['aws_endpoint_url']}  canvas {canvas_url}")
        tenant_id = _connect_tenant(state_dir, canvas_url, api_url)
        if canvas_conditions:
            requests.post(f"{canvas_url}/_sim/config", json=canvas_conditions, timeout=10).raise_for_status()
            _say(f"   Canvas conditions from now on: {json.dumps(canvas_conditions)}")
        requests.post(f"{canvas_url}/_sim/stats/reset", timeout=10)
        _say("4. full sync through the queues (planner -> one message per course -> workers)")
        sync_started = time.monotonic()
        first = _sync(state_dir, tenant_id)
        sync_seconds = time.monotonic() - sync_started
        canvas_requests = requests.get(f"{canvas_url}/_sim/stats", timeout=10).json()["requests_total"]
        _say("5. exporting the roster and checking it against the simulator's ground truth")
        export = json.loads(_cli(state_dir, "roster", "export", "--tenant", tenant_id, "--format", "json"))
        truth = requests.get(f"{canvas_url}/_sim/ground_truth", timeout=30).json()
        expected = expected_export(truth, user_id_field="email")
        problems = differences(export, expected)
        _say("6. syncing again: an unchanged Canvas must write nothing")
        second = _sync(state_dir, tenant_id, "--force")  # an operator may skip the sync-now cooldown
        written = sum(second["changes"][kind] for kind in ("created", "updated", "dropped"))
        exported = _exported_totals(export)
        _say("")
        _say("summary")
        in_canvas = len(truth["courses"])
        _say(f"  courses synced      {exported['courses']} (of {in_canvas} in Canvas; published only)")
        _say(f"  sections            {exported['sections']}")
        _say(f"  users               {exported['users']}")
        active = totals(expected)["active_enrollments"]
        _say(f"  enrollments         {exported['enrollments']} ({active} active)")
        lower_bound = minimum_requests(truth, with_email=True)
        _say(f"  Canvas requests     {canvas_requests} in the first sync (fewest possible: {lower_bound})")
        _say(
            f"  throttled / retries {first['canvas_throttled']} / {first['canvas_retries']} in the first sync"
        )
        _say(f"  first sync          {sync_seconds:.1f} s; items written {first['changes']['created']}")
        _say(f"  second sync         items written {written}, unchanged {second['changes']['unchanged']}")
        _say(f"  elapsed             {time.monotonic() - started:.1f} s")
        for problem in problems:
            _say(f"  MISMATCH {problem}")
        if written:
            _say("  the second sync wrote items although Canvas did not change")
        if problems or written:
            return 1
        _say("  export matches the simulator's ground truth (courses, sections, users, enrollments)")
        return 0
    finally:
        stop_stack(state_dir)
        _say("local stack stopped")


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
        return run_demo(arguments.state_dir, arguments.seed, arguments.courses, conditions)
    except (RuntimeError, TimeoutError, requests.RequestException) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
