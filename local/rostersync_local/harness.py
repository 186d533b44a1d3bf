"""Building blocks of the demo and the benchmarks: the CLI, a tenant connected through OAuth, syncs
through the queues, AWS clients on the local stack, live-event latency.

Everything here drives the running local stack the way an operator would (the CLI, the simulator's
``/_sim`` admin endpoints); nothing reaches into the functions' code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import requests

from rostersync_local.control import LOCAL_AWS_ENVIRONMENT

CLI = [sys.executable, "-m", "rostersync_cli.main"]
Echo = Callable[[str], None]


def say(message: str) -> None:
    print(message, flush=True)


def cli(state_dir: Path, *arguments: str) -> str:
    """Run the operator CLI on the stack of ``state_dir``; its stdout (raises when it fails)."""
    environment = {**os.environ, "ROSTERSYNC_STATE_DIR": str(state_dir)}
    completed = subprocess.run(  # noqa: S603 - our own CLI
        [*CLI, *arguments], capture_output=True, text=True, env=environment, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"rostersync {' '.join(arguments[:2])} failed: {completed.stderr.strip()}")
    return completed.stdout.strip()


def sync(
    state_dir: Path, tenant_id: str, *extra: str, echo: Echo | None = say, check: bool = True
) -> dict[str, Any]:
    """``rostersync sync run --wait``: its run summary (with ``check``, raises unless every course synced)."""
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
        if echo is not None:
            echo(f"    {line.rstrip()}")
    output = process.stdout.read()
    failed = process.wait() != 0
    if failed and (check or not output.strip()):
        raise RuntimeError("the sync run failed")
    summary: dict[str, Any] = json.loads(output)
    return summary


def connect_tenant(
    state_dir: Path,
    canvas_url: str,
    api_url: str,
    *,
    name: str = "Demo University",
    user_id_field: str | None = "email",
    key: dict[str, Any] | None = None,
    echo: Echo = say,
) -> str:
    """Add a tenant with the CLI and authorize it through OAuth, with ``key`` or a new developer key."""
    key = key or developer_key(canvas_url, api_url, "rostersync demo")
    echo(f"2. Canvas admin created developer key {key['client_id']} ({len(key['scopes'])} scopes)")
    identifier = ["--user-id-field", user_id_field] if user_id_field else []
    tenant_id = cli(
        state_dir, "tenant", "add", "--name", name, "--canvas-url", canvas_url,
        "--client-id", key["client_id"], "--client-secret", key["client_secret"],
        "--allow-insecure-canvas", *identifier,
    )  # fmt: skip
    echo(f"3. tenant {tenant_id} added; authorizing through Canvas's OAuth flow")
    start_url = cli(state_dir, "tenant", "authorize", tenant_id)
    page = requests.get(start_url, timeout=30)  # follows the redirects, as a browser would
    if page.status_code != 200:
        raise RuntimeError(f"authorization failed ({page.status_code}): {page.text[:300]}")
    tenant = json.loads(cli(state_dir, "tenant", "show", tenant_id))
    echo(f"   connected: status {tenant['status']}, root account {tenant['root_account_id']}")
    return tenant_id


def developer_key(canvas_url: str, api_url: str, name: str) -> dict[str, Any]:
    """A new developer key in the simulator, redirecting to the stack's OAuth callback."""
    key: dict[str, Any] = requests.post(
        f"{canvas_url}/_sim/developer_keys",
        json={"name": name, "redirect_uri": f"{api_url}/oauth/callback"},
        timeout=10,
    ).json()
    return key


def oauth_token(canvas_url: str, key: dict[str, Any], scopes: list[str]) -> str:
    """An access token of a new grant of ``key`` (the simulator approves at once): the authorize
    redirect's code, exchanged at the token endpoint. Each grant has its own throttle bucket."""
    authorize = requests.get(
        f"{canvas_url}/login/oauth2/auth",
        params={"client_id": key["client_id"], "response_type": "code",
                "redirect_uri": key["redirect_uri"], "scope": " ".join(scopes)},
        allow_redirects=False,
        timeout=10,
    )  # fmt: skip
    code = parse_qs(urlsplit(authorize.headers.get("Location", "")).query).get("code")
    if not code:
        raise RuntimeError(f"no authorization code ({authorize.status_code}): {authorize.text[:300]}")
    response = requests.post(
        f"{canvas_url}/login/oauth2/token",
        data={"grant_type": "authorization_code", "client_id": key["client_id"],
              "client_secret": key["client_secret"], "redirect_uri": key["redirect_uri"], "code": code[0]},
        timeout=10,
    )  # fmt: skip
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def aws_client(service: str, endpoint_url: str) -> Any:
    """A boto3 client of ``service`` on the local stack's moto server."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=LOCAL_AWS_ENVIRONMENT["AWS_DEFAULT_REGION"],
        aws_access_key_id=LOCAL_AWS_ENVIRONMENT["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_AWS_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
    )


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of ``values`` (share in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def live_event_latencies(
    state: dict[str, Any], tenant_id: str, events: int, *, timeout_seconds: float = 30
) -> tuple[list[float], int]:
    """Enroll ``events`` new students one at a time through the simulator (each emits a live event to
    the stack's queue) and time each from the change until its enrollment item is in DynamoDB.

    Returns the latencies and the number of published courses the enrollments went round.
    """
    canvas_url, outputs = state["canvas_url"], state["outputs"]
    requests.post(
        f"{canvas_url}/_sim/live_events",
        json={"sqs_queue_url": outputs["LiveEventsQueueUrl"], "aws_endpoint_url": state["aws_endpoint_url"]},
        timeout=10,
    ).raise_for_status()
    dynamodb = aws_client("dynamodb", state["aws_endpoint_url"])
    truth = requests.get(f"{canvas_url}/_sim/ground_truth", timeout=60).json()
    course_ids = [c["id"] for c in truth["courses"] if c["workflow_state"] == "available"]
    latencies: list[float] = []
    for number in range(events):
        course_id = course_ids[number % len(course_ids)]
        started = time.monotonic()
        student = {"first_name": f"Bench{number}", "last_name": "Student", "sis_user_id": f"bench-{number}"}
        enrollment_id = requests.post(
            f"{canvas_url}/_sim/changes/enroll",
            json={"course_id": course_id, "user": student},
            timeout=10,
        ).json()["enrollment_id"]
        key = {"pk": {"S": f"T#{tenant_id}#C#{course_id}"}, "sk": {"S": f"ENROLLMENT#{enrollment_id}"}}
        while not dynamodb.get_item(TableName=outputs["RosterTableName"], Key=key).get("Item"):
            if time.monotonic() - started > timeout_seconds:
                raise TimeoutError(f"live event {number}: not applied within {timeout_seconds:.0f} s")
            time.sleep(0.02)
        latencies.append(time.monotonic() - started)
    return latencies, len(course_ids)
