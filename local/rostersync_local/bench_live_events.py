"""Benchmark (not a test): how long from a change in Canvas to the roster item in DynamoDB.

Starts the local stack, connects a tenant and syncs it, points the simulator's live events at the
stack's queue, then enrolls N new students one at a time and measures, for each, the time from the
simulator's change to the enrollment item appearing in DynamoDB (polled every 20 ms).
Run: make bench-live-events [ARGS="--events 100"].
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import boto3
import requests

from rostersync_local.control import REPO_ROOT, start_stack, stop_stack
from rostersync_local.demo import _connect_tenant, _sync
from rostersync_local.runner import LOCAL_AWS_ENVIRONMENT


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(state_dir: Path, events: int, courses: int) -> int:
    stop_stack(state_dir)
    state = start_stack(state_dir, courses=courses)
    try:
        canvas_url, outputs = state["canvas_url"], state["outputs"]
        tenant_id = _connect_tenant(state_dir, canvas_url, state["api_url"])
        _sync(state_dir, tenant_id)
        requests.post(
            f"{canvas_url}/_sim/live_events",
            json={
                "sqs_queue_url": outputs["LiveEventsQueueUrl"],
                "aws_endpoint_url": state["aws_endpoint_url"],
            },
            timeout=10,
        ).raise_for_status()
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=state["aws_endpoint_url"],
            region_name=LOCAL_AWS_ENVIRONMENT["AWS_DEFAULT_REGION"],
            aws_access_key_id=LOCAL_AWS_ENVIRONMENT["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_AWS_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
        )
        truth = requests.get(f"{canvas_url}/_sim/ground_truth", timeout=30).json()
        course_ids = [c["id"] for c in truth["courses"] if c["workflow_state"] == "available"]
        latencies: list[float] = []
        for number in range(events):
            course_id = course_ids[number % len(course_ids)]
            started = time.monotonic()
            student = {
                "first_name": f"Bench{number}",
                "last_name": "Student",
                "sis_user_id": f"bench-{number}",
            }
            enrollment_id = requests.post(
                f"{canvas_url}/_sim/changes/enroll",
                json={"course_id": course_id, "user": student},
                timeout=10,
            ).json()["enrollment_id"]
            key = {"pk": {"S": f"T#{tenant_id}#C#{course_id}"}, "sk": {"S": f"ENROLLMENT#{enrollment_id}"}}
            while not dynamodb.get_item(TableName=outputs["RosterTableName"], Key=key).get("Item"):
                if time.monotonic() - started > 30:
                    print(f"event {number}: not applied within 30 s")
                    return 1
                time.sleep(0.02)
            latencies.append(time.monotonic() - started)
        print(f"live events applied: {len(latencies)} (one enrollment each, {len(course_ids)} courses)")
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
