"""`make bench`'s delivery figures: the /v1 API and the change feed on the bench's local stack.

- the feed of a first sync read end to end through /v1/changes (500 a page): changes per second;
- a 500-enrollment course's roster through /v1/courses/{id}/roster: its DynamoDB requests (counted on
  the library's own read, the code path the function runs) and the latency of 50 reads (p50, p95);
- the feed's sequence before and after a re-sync (an unchanged Canvas adds no entry).
"""

from __future__ import annotations

import time
from typing import Any

import boto3
import requests

from rostersync.canvas.models import CanvasCourse, CanvasEnrollment, CanvasSection
from rostersync.delivery.changes import roster_changes
from rostersync.delivery.reading import course_roster
from rostersync.models import ApiClient
from rostersync.store.api_authorizer import ApiAuthorizer
from rostersync.store.table import RosterTable
from rostersync.sync.roster import build_course_roster, course_item, roster_items
from rostersync_local.control import LOCAL_AWS_ENVIRONMENT
from rostersync_local.harness import percentile, say

ROSTER_TENANT = "tbenchroster0"
ROSTER_COURSE = 900_001
ROSTER_ENROLLMENTS = 500
ROSTER_READS = 50


def _moto_options(state: dict[str, Any]) -> dict[str, str]:
    return {
        "endpoint_url": state["aws_endpoint_url"],
        "region_name": LOCAL_AWS_ENVIRONMENT["AWS_DEFAULT_REGION"],
        "aws_access_key_id": LOCAL_AWS_ENVIRONMENT["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": LOCAL_AWS_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
    }


def stack_table(state: dict[str, Any]) -> RosterTable:
    resource = boto3.resource("dynamodb", **_moto_options(state))
    return RosterTable(state["outputs"]["RosterTableName"], resource)


def client_headers(state: dict[str, Any], tenant_id: str) -> dict[str, str]:
    """A machine client of the tenant and its bearer token (minted as the embedded identity provider's
    client-credentials grant mints it): registered, and in the /v1 authorizer's audience."""
    client_id = f"bench-{tenant_id}"
    stack_table(state).put_api_client(ApiClient(client_id=client_id, tenant_id=tenant_id, name="bench"))
    authorizer = ApiAuthorizer(
        state["outputs"]["HttpApiId"], client=boto3.client("apigatewayv2", **_moto_options(state))
    )
    authorizer.set_audience([*authorizer.audience(), client_id])
    response = requests.post(
        f"{state['control_url']}/client-tokens", json={"client_id": client_id}, timeout=30
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def feed_read(state: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    headers = client_headers(state, tenant_id)
    started = time.monotonic()
    changes, pages, after = 0, 0, None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"after": after} if after else {})}
        response = requests.get(f"{state['api_url']}/v1/changes", params=params, headers=headers, timeout=120)
        response.raise_for_status()
        page = response.json()
        changes, pages = changes + len(page["items"]), pages + 1
        if page["next"] is None:
            break
        after = page["next"]
    seconds = time.monotonic() - started
    return {
        "feed_changes_first_sync": changes,
        "feed_read_pages": pages,
        "feed_read_seconds": round(seconds, 2),
        "feed_changes_per_second": round(changes / seconds, 1) if seconds else None,
    }


def roster_read(state: dict[str, Any]) -> dict[str, Any]:
    """A 500-enrollment course written through the library's commit, then read through the API."""
    table = stack_table(state)
    course = CanvasCourse(id=ROSTER_COURSE, name="Bench roster", workflow_state="available")
    section = CanvasSection(id=ROSTER_COURSE, name="All", course_id=ROSTER_COURSE)
    enrollments = [
        CanvasEnrollment.model_validate(
            {"id": ROSTER_COURSE * 1000 + n, "user_id": 5_000_000 + n, "course_id": ROSTER_COURSE,
             "course_section_id": ROSTER_COURSE, "type": "StudentEnrollment", "role": "StudentEnrollment",
             "role_id": 3, "enrollment_state": "active",
             "user": {"id": 5_000_000 + n, "name": f"Student {n}", "sis_user_id": f"bench{n}"}}
        )
        for n in range(ROSTER_ENROLLMENTS)
    ]  # fmt: skip
    roster = build_course_roster(course, [section], enrollments)
    items = roster_items(roster)
    table.write_course(
        ROSTER_TENANT, ROSTER_COURSE, course_item(roster.course), list(items.values()), [],
        expected_generation=0, describe_changes=roster_changes,
    )  # fmt: skip
    operations: list[str] = []
    table._table.meta.client.meta.events.register(
        "before-send.dynamodb.*",
        lambda request, **_: operations.append(request.headers["X-Amz-Target"].decode().split(".")[1]),
    )
    course_roster(table, ROSTER_TENANT, ROSTER_COURSE)
    headers = client_headers(state, ROSTER_TENANT)
    url = f"{state['api_url']}/v1/courses/{ROSTER_COURSE}/roster"
    latencies = []
    for _ in range(ROSTER_READS):
        started = time.monotonic()
        response = requests.get(url, headers=headers, timeout=60)
        latencies.append(time.monotonic() - started)
        response.raise_for_status()
    assert len(response.json()["enrollments"]) == ROSTER_ENROLLMENTS
    return {
        "roster_read_enrollments": ROSTER_ENROLLMENTS,
        "roster_read_dynamodb_requests": len(operations),
        "roster_read_dynamodb_operations": operations,
        "roster_read_p50_seconds": round(percentile(latencies, 0.50), 3),
        "roster_read_p95_seconds": round(percentile(latencies, 0.95), 3),
    }


def feed_head(state: dict[str, Any], tenant_id: str) -> int:
    return stack_table(state).feed_head(tenant_id)


def measure(state: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    """The feed of the tenant's first sync, then the 500-enrollment roster's reads."""
    say("   delivery: the first sync's feed through /v1/changes, a 500-enrollment roster's reads")
    result = feed_read(state, tenant_id) | roster_read(state)
    say(
        f"   delivery: {result['feed_changes_first_sync']} changes, {result['feed_changes_per_second']}/s; "
        f"roster read: {result['roster_read_dynamodb_requests']} DynamoDB requests, "
        f"p95 {result['roster_read_p95_seconds']} s"
    )
    return result
