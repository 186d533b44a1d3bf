"""DynamoDB requests per course when the worker syncs a batch of courses, counted at the client.

The local stack runs one moto process for every function, so each request per course is paid in wall time
by the whole sync; in production each is a round trip. The Canvas slots (the tenant's concurrency limit,
taken and given back around each course's Canvas reads) are counted apart: they belong to the limit's
design, not to reading and writing the course.
"""

import importlib.util
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from rostersync.canvas.models import CanvasCourse
from rostersync.models import CourseOutcome, CourseSyncMessage, Tenant
from rostersync.services import Services
from rostersync.store.keys import MEMBER_PREFIX, SLOT_PREFIX
from rostersync_local.canvas_sim import RunningSimulator, SimulatorConfig, serve
from tests.integration.conftest import ROOT, connect

pytestmark = pytest.mark.integration
BATCH_SIZE = 5  # the worker's SQS batch size in template.yaml


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve(SimulatorConfig(seed=3, courses=8, reference_year=2026)) as running:
        yield running


def _text(value: Any) -> str:
    """A key attribute as the resource gives it (text) or as the wire carries it ({"S": text})."""
    return str(value["S"] if isinstance(value, dict) else value)


def _written_keys(params: dict[str, Any]) -> list[tuple[str, str]]:
    requests_by_table = params.get("RequestItems", {}).values()
    writes = [
        write.get("PutRequest", {}).get("Item") or write["DeleteRequest"]["Key"]
        for w in requests_by_table
        for write in w
    ]
    return [(_text(key["pk"]), _text(key["sk"])) for key in writes]


def _is_roster_item(pk: str, sk: str) -> bool:
    return "#C#" in pk or sk.startswith(MEMBER_PREFIX)


@contextmanager
def dynamodb_requests(services: Services) -> Iterator[Counter[str]]:
    """The DynamoDB requests the table's client sends meanwhile, by operation; apart from those, a Canvas
    slot's as `slot`, and a page of roster items (BatchWriteItem) as `roster page`, with the items written
    as `roster items`."""
    requests_sent: Counter[str] = Counter()
    events = services.table._table.meta.client.meta.events

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        key = params.get("Key") or params.get("Item") or {}
        written = _written_keys(params) if model.name == "BatchWriteItem" else []
        roster_items = [item_key for item_key in written if _is_roster_item(*item_key)]
        if _text(key.get("sk", "")).startswith(SLOT_PREFIX):
            requests_sent["slot"] += 1
        elif roster_items:
            requests_sent["roster page"] += 1
            requests_sent["roster items"] += len(roster_items)
        else:
            requests_sent[model.name] += 1

    events.register("before-parameter-build.dynamodb", count)
    try:
        yield requests_sent
    finally:
        events.unregister("before-parameter-build.dynamodb", count)


def worker_handler(services: Services, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The course sync worker's Lambda handler, as its module is loaded in Lambda, using `services`."""
    settings = services.settings
    for name, value in {
        "ROSTER_TABLE_NAME": settings.table_name,
        "COURSE_SYNC_QUEUE_URL": settings.course_sync_queue_url,
        "SYNC_REQUEST_QUEUE_URL": settings.sync_request_queue_url,
        "TENANT_SECRET_PREFIX": settings.tenant_secret_prefix,
        "POWERTOOLS_METRICS_NAMESPACE": "rostersync",  # as template.yaml sets for every function
    }.items():
        monkeypatch.setenv(name, value)
    path = ROOT / "functions" / "course_sync_worker" / "app.py"
    spec = importlib.util.spec_from_file_location(f"course_sync_worker_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "services", services)
    return module.handler


class Context:
    function_name = "course-sync-worker"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:course-sync-worker"
    aws_request_id = "round-trips"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 120_000


def sqs_event(messages: list[CourseSyncMessage]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{index}",
                "receiptHandle": "r",
                "body": message.model_dump_json(),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1700000000000",
                    "SenderId": "planner",
                    "ApproximateFirstReceiveTimestamp": "1700000000000",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:course-sync",
                "awsRegion": "us-east-1",
            }
            for index, message in enumerate(messages)
        ]
    }


def published_courses(sim: RunningSimulator) -> list[CanvasCourse]:
    truth = requests.get(f"{sim.url}/_sim/ground_truth", timeout=10).json()
    return [CanvasCourse.model_validate(c) for c in truth["courses"] if c["workflow_state"] == "available"]


def run_batch(
    services: Services, handler: Any, tenant: Tenant, run_id: str, courses: list[CanvasCourse]
) -> Counter[str]:
    # One course more is pending in the run, as in a run of many batches: no batch here closes it.
    services.table.put_pending_courses(tenant.tenant_id, run_id, [c.id for c in courses] + [999_999])
    messages = [CourseSyncMessage(tenant_id=tenant.tenant_id, run_id=run_id, course=c) for c in courses]
    with dynamodb_requests(services) as sent:
        assert handler(sqs_event(messages), Context()) == {"batchItemFailures": []}
    results = {r.course_id: r for r in services.table.list_course_results(tenant.tenant_id, run_id)}
    assert {results[c.id].outcome for c in courses} == {CourseOutcome.SUCCEEDED}
    return sent


def test_a_batch_syncs_each_course_in_few_dynamodb_requests(
    services: Services, sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = connect(services, sim)
    handler = worker_handler(services, monkeypatch)
    courses = published_courses(sim)[:BATCH_SIZE]
    assert len(courses) == BATCH_SIZE
    first = run_batch(services, handler, tenant, "run-first", courses)
    again = run_batch(services, handler, tenant, "run-again", courses)

    def per_course(sent: Counter[str]) -> float:
        """Requests per course besides the Canvas slots and the roster's own pages."""
        besides = sum(sent.values()) - sent["slot"] - sent["roster page"] - sent["roster items"]
        return besides / BATCH_SIZE

    # The roster's items go in as few pages as DynamoDB allows (25 items a page, each course apart; the
    # commit's feed changes, under the course's key, share its pages)...
    assert first["roster items"] > 0
    assert first["roster page"] <= first["roster items"] / 25 + BATCH_SIZE
    # ...and the rest of a first sync fits in 5 requests a course (the tenant's feed counter read with
    # the batch's course rows, not before each commit): 6 with a one-page roster.
    assert per_course(first) <= 5
    # An unchanged course writes no roster item, and costs 3 requests at most.
    assert again["roster page"] == 0
    assert per_course(again) <= 3
    # Two per course: taken before its Canvas reads, given back after.
    assert first["slot"] == again["slot"] == 2 * BATCH_SIZE
