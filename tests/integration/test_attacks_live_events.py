"""Attacks on the live-event intake boundary: each test is named after one, and must stay green.

What anyone on the internet can send is a POST to /live-events; what Canvas Data Services sends lands on
the queue. The two live-event functions run here as the local runner runs them (their module imported
with the environment the template gives them, the runner's API Gateway in front of the intake, SQS
records built from moto's queue as the runner's poller builds them), against moto's server and an
in-process Canvas simulator. Two deployments: "open" (the dev default, unsigned HTTPS events accepted
within a budget of 3 re-reads a minute) and "strict" (RequireSignedLiveEvents=true, as in prod).
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from werkzeug.test import Client

from rostersync.events.apply import BUDGET_WINDOW_SECONDS
from rostersync.models import Tenant
from rostersync.services import Services
from rostersync.settings import load_settings
from rostersync_local.api_gateway import ApiGateway
from rostersync_local.canvas_sim import RunningSimulator, SimulatorConfig, serve
from rostersync_local.functions import Invocation
from rostersync_local.lambda_host import LocalLambdaContext
from rostersync_local.queues import lambda_record
from rostersync_local.template import ACCOUNT_ID, REGION, FunctionSpec, load_stack
from tests.integration.conftest import connect
from tests.unit.test_live_events_intake import JwksServer
from tests.unit.test_live_events_signing import Signer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COURSE_READ = "GET /api/v1/accounts/:account_id/courses/:id"  # what one course re-read costs first
UNSIGNED_BUDGET = 3


def _import_function(spec: FunctionSpec, module_name: str, environment: dict[str, str]) -> ModuleType:
    """The function's module, imported under the environment Lambda would give it."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        load_settings.cache_clear()
        found = importlib.util.spec_from_file_location(module_name, ROOT / spec.code_dir / "app.py")
        assert found is not None and found.loader is not None
        module = importlib.util.module_from_spec(found)
        found.loader.exec_module(module)
    load_settings.cache_clear()
    return module


def _context(name: str) -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name=name,
        memory_limit_in_mb=512,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
        aws_request_id=str(uuid.uuid4()),
        deadline=time.time() + 60,
    )


@dataclass
class Deployment:
    """The intake (behind the runner's API Gateway) and the queue consumer of one stack setting."""

    intake: ModuleType
    consumer: ModuleType
    gateway: Client
    queue_url: str
    queue_arn: str
    sqs: Any

    def post(self, body: str | bytes, content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
        answer = self.gateway.post("/live-events", data=body, headers={"Content-Type": content_type})
        return answer.status_code, json.loads(answer.get_data(as_text=True) or "{}")

    def consume(self) -> list[str]:
        """Run the consumer over everything queued; the ids of the records it failed (for the DLQ)."""
        messages: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", []):
            messages.extend(batch)
        if not messages:
            return []
        records = [lambda_record(message, self.queue_arn) for message in messages]
        reply = self.consumer.handler({"Records": records}, _context("live-events"))
        for message in messages:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [failure["itemIdentifier"] for failure in reply["batchItemFailures"]]

    def drain(self) -> None:
        """Take everything off the queue unread: each test starts from an empty queue."""
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in batch:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def queued(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def from_data_services(self, document: dict[str, Any] | str) -> None:
        """What Canvas Data Services does: the event's JSON straight onto our queue (IAM-authenticated)."""
        body = document if isinstance(document, str) else json.dumps(document)
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)


@pytest.fixture(scope="module")
def canvas_keys() -> Iterator[tuple[Signer, JwksServer]]:
    signer = Signer("canvas-live-events")
    server = JwksServer(signer.jwks())
    yield signer, server
    server.close()


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve(SimulatorConfig(seed=43, courses=6, reference_year=2026)) as running:
        yield running


def _deployment(services: Services, jwks_url: str, *, require_signed: bool) -> Deployment:
    endpoint = os.environ["AWS_ENDPOINT_URL"]  # moto's, set by the services fixture
    overrides = {
        "AllowInsecureCanvasUrls": "true",
        "LiveEventsJwksUrl": jwks_url,
        "RequireSignedLiveEvents": str(require_signed).lower(),
    }
    model = load_stack(ROOT / "template.yaml", "conn-test", overrides, endpoint)
    variant = "strict" if require_signed else "open"
    base = {
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "UNSIGNED_LIVE_EVENT_REREADS_PER_MINUTE": str(UNSIGNED_BUDGET),
    }
    modules = {
        logical_id: _import_function(
            model.functions[logical_id],
            f"{logical_id}_{variant}",
            {
                **model.functions[logical_id].environment,
                **base,
                "AWS_LAMBDA_FUNCTION_NAME": f"{model.functions[logical_id].name}-{variant}",
            },
        )
        for logical_id in ("LiveEventsIntakeFunction", "LiveEventsFunction")
    }

    def invoke(logical_id: str, event: Any) -> Invocation:
        try:
            return Invocation(payload=modules[logical_id].handler(event, _context(logical_id)))
        except Exception as error:  # as Lambda: any exception is a function error (API Gateway: 500)
            return Invocation(error={"errorType": type(error).__name__, "errorMessage": str(error)})

    routes = [route for route in model.routes if route.path == "/live-events"]
    queue = model.queues["LiveEventsQueue"]
    sqs = boto3.client("sqs")
    return Deployment(
        intake=modules["LiveEventsIntakeFunction"],
        consumer=modules["LiveEventsFunction"],
        gateway=Client(ApiGateway(routes, invoke, lambda *_: None)),
        queue_url=sqs.get_queue_url(QueueName=queue.name)["QueueUrl"],
        queue_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue.name}",
        sqs=sqs,
    )


# Both depend on `services`: its moto server and resources, and the environment pointing boto3 at them.
@pytest.fixture(scope="module")
def open_stack(services: Services, canvas_keys: tuple[Signer, JwksServer]) -> Deployment:
    return _deployment(services, canvas_keys[1].url, require_signed=False)


@pytest.fixture(scope="module")
def strict_stack(services: Services, canvas_keys: tuple[Signer, JwksServer]) -> Deployment:
    return _deployment(services, canvas_keys[1].url, require_signed=True)


@pytest.fixture
def tenants(services: Services, sim: RunningSimulator, open_stack: Deployment) -> Iterator[list[Tenant]]:
    """Two tenants connected to the one simulated Canvas (say, staging and production), and an empty
    live-events queue (the open and strict deployments share it)."""
    open_stack.drain()
    connected = [connect(services, sim), connect(services, sim)]
    yield connected
    for tenant in connected:
        services.table.delete_tenant(tenant.tenant_id)


@pytest.fixture
def tenant(tenants: list[Tenant]) -> Tenant:
    return tenants[0]


@pytest.fixture
def course_id(sim: RunningSimulator) -> int:
    truth = requests.get(f"{sim.url}/_sim/ground_truth", timeout=30).json()
    return int(next(c["id"] for c in truth["courses"] if c["workflow_state"] == "available"))


def course_reads(sim: RunningSimulator) -> int:
    return int(requests.get(f"{sim.url}/_sim/stats", timeout=30).json()["by_route"].get(COURSE_READ, 0))


def canvas_requests(sim: RunningSimulator) -> int:
    return int(requests.get(f"{sim.url}/_sim/stats", timeout=30).json()["requests_total"])


def full_syncs_requested(services: Services) -> Counter[str]:
    """Tenants of the sync requests on the planner's queue (taken off it)."""
    sqs, url = boto3.client("sqs"), services.settings.sync_request_queue_url
    found: Counter[str] = Counter()
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            found[json.loads(message["Body"])["tenant_id"]] += 1
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def event(
    tenant: Tenant, name: str, body: dict[str, Any], *, event_id: str | None = None, host_only: bool = False
) -> dict[str, Any]:
    """A Canvas-format event for the tenant's Canvas (a new id each time unless given)."""
    metadata = {
        "event_name": name,
        "event_time": datetime.now(UTC).isoformat(),
        "event_id": event_id or str(uuid.uuid4()),
        "hostname": urlsplit(tenant.canvas_url).netloc,
        "producer": "canvas",
    }
    if not host_only:
        metadata["root_account_uuid"] = str(tenant.root_account_uuid)
    return {"metadata": metadata, "body": body}


def course_updated(tenant: Tenant, course_id: int, **fields: Any) -> dict[str, Any]:
    return event(
        tenant, "course_updated", {"course_id": str(course_id), "workflow_state": "available"}, **fields
    )


def sis_import_finished(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"sis_batch_id": str(uuid.uuid4().int % 10**6), "account_id": "1", "workflow_state": "imported"}
    return event(tenant, "sis_batch_updated", body, **fields)


def signed(signer: Signer, document: dict[str, Any], **claims: Any) -> str:
    now = int(time.time())
    return signer.token({**document, "iat": now, "exp": now + 300} | claims)


def a_fresh_budget_window(seconds_needed: float = 10) -> None:
    """Start where the current budget window has time left, so a test's events share one window."""
    remaining = BUDGET_WINDOW_SECONDS - time.time() % BUDGET_WINDOW_SECONDS
    if remaining < seconds_needed:
        time.sleep(remaining + 0.1)


# -- full syncs -------------------------------------------------------------------------------------
def test_unsigned_sis_import_events_by_uuid_or_host_replayed_with_new_ids_start_no_full_sync(
    services: Services, sim: RunningSimulator, open_stack: Deployment, tenants: list[Tenant]
) -> None:
    full_syncs_requested(services)
    forgeries = [sis_import_finished(tenants[0], host_only=host_only) for host_only in (False, True) * 2]
    assert len({forged["metadata"]["event_id"] for forged in forgeries}) == 4  # a new id each time
    for forged in forgeries:
        status, answer = open_stack.post(json.dumps(forged))
        assert (status, answer["signed"]) == (202, "false")
    requests_before = canvas_requests(sim)
    assert open_stack.consume() == []
    assert full_syncs_requested(services) == Counter()
    assert canvas_requests(sim) == requests_before


def test_verified_sis_import_events_start_one_full_sync_per_tenant_per_cooldown(
    services: Services, open_stack: Deployment, tenants: list[Tenant], canvas_keys: tuple[Signer, JwksServer]
) -> None:
    full_syncs_requested(services)
    open_stack.from_data_services(sis_import_finished(tenants[0]))
    open_stack.from_data_services(sis_import_finished(tenants[0]))
    status, answer = open_stack.post(
        signed(canvas_keys[0], sis_import_finished(tenants[0])), "application/jwt"
    )
    assert (status, answer["signed"]) == (202, "true")
    assert open_stack.consume() == []
    assert full_syncs_requested(services) == Counter({tenant.tenant_id: 1 for tenant in tenants})


# -- budgets and dedupe -----------------------------------------------------------------------------
def test_a_flood_of_unsigned_events_beyond_the_tenant_budget_is_deferred_and_real_events_still_apply(
    sim: RunningSimulator, open_stack: Deployment, tenant: Tenant, tenants: list[Tenant], course_id: int
) -> None:
    a_fresh_budget_window()
    before = course_reads(sim)
    for _ in range(4 * UNSIGNED_BUDGET):
        assert open_stack.post(json.dumps(course_updated(tenant, course_id)))[0] == 202
    assert open_stack.consume() == []
    assert course_reads(sim) - before == UNSIGNED_BUDGET * len(tenants)  # each tenant's own budget
    open_stack.from_data_services(course_updated(tenant, course_id))  # Canvas's own, over SQS
    assert open_stack.consume() == []
    assert course_reads(sim) - before == (UNSIGNED_BUDGET + 1) * len(tenants)


def test_the_same_event_delivered_twice_is_read_from_canvas_once(
    sim: RunningSimulator, open_stack: Deployment, tenant: Tenant, course_id: int
) -> None:
    document = json.dumps(course_updated(tenant, course_id))
    before = course_reads(sim)
    open_stack.from_data_services(document)
    open_stack.from_data_services(document)  # SQS delivers at least once
    assert open_stack.consume() == []
    open_stack.from_data_services(document)  # Canvas sends it again later
    assert open_stack.consume() == []
    assert course_reads(sim) - before == 2  # once for each of the two tenants of this Canvas


def test_an_unsigned_event_with_a_forged_id_does_not_suppress_the_real_event(
    sim: RunningSimulator, open_stack: Deployment, tenant: Tenant, tenants: list[Tenant], course_id: int
) -> None:
    event_id = str(uuid.uuid4())  # the id Canvas will give its next event, guessed or seen
    forged = course_updated(tenant, course_id, event_id=event_id)
    forged["body"]["course_id"] = "999999"  # a course no tenant syncs
    assert open_stack.post(json.dumps(forged))[0] == 202
    assert open_stack.consume() == []
    before = course_reads(sim)
    open_stack.from_data_services(course_updated(tenant, course_id, event_id=event_id))
    assert open_stack.consume() == []
    assert course_reads(sim) - before == len(tenants)


def test_an_event_for_an_unknown_tenant_costs_no_canvas_request(
    sim: RunningSimulator, open_stack: Deployment, tenant: Tenant, course_id: int
) -> None:
    stranger = course_updated(tenant, course_id)
    stranger["metadata"].update(root_account_uuid="not-a-tenant-of-ours", hostname="canvas.elsewhere.edu")
    before = canvas_requests(sim)
    assert open_stack.post(json.dumps(stranger))[0] == 202
    open_stack.from_data_services(stranger)
    assert open_stack.consume() == []
    assert canvas_requests(sim) == before


# -- signatures ---------------------------------------------------------------------------------------
def test_a_signed_event_without_exp_and_an_old_iat_is_refused(
    open_stack: Deployment, tenant: Tenant, course_id: int, canvas_keys: tuple[Signer, JwksServer]
) -> None:
    captured = course_updated(tenant, course_id)
    token = canvas_keys[0].token({**captured, "iat": int(time.time()) - 3 * 86400})
    assert open_stack.post(token, "application/jwt") == (
        401,
        {"error": "invalid signature", "reason": "expired"},
    )
    assert open_stack.queued() == 0


def test_a_signed_event_replayed_after_its_exp_is_refused(
    open_stack: Deployment, tenant: Tenant, course_id: int, canvas_keys: tuple[Signer, JwksServer]
) -> None:
    long_ago = int((datetime.now(UTC) - timedelta(hours=2)).timestamp())
    token = signed(canvas_keys[0], course_updated(tenant, course_id), iat=long_ago, exp=long_ago + 300)
    assert open_stack.post(token, "application/jwt")[0] == 401
    assert open_stack.queued() == 0


def test_a_signed_event_the_intake_verified_still_applies_after_waiting_in_the_queue_past_its_exp(
    sim: RunningSimulator,
    open_stack: Deployment,
    tenant: Tenant,
    tenants: list[Tenant],
    course_id: int,
    canvas_keys: tuple[Signer, JwksServer],
) -> None:
    """The consumer checks a token as of when SQS took it (SentTimestamp), not when it is read."""
    now = int(time.time())
    # Within the minute of leeway now, past it two seconds later.
    token = signed(canvas_keys[0], course_updated(tenant, course_id), iat=now - 120, exp=now - 59)
    assert open_stack.post(token, "application/jwt")[0] == 202
    time.sleep(2.5)  # a backlog
    before = course_reads(sim)
    assert open_stack.consume() == []
    assert course_reads(sim) - before == len(tenants)


def test_a_forged_signature_is_refused_and_queues_nothing(
    open_stack: Deployment, tenant: Tenant, course_id: int, canvas_keys: tuple[Signer, JwksServer]
) -> None:
    impostor = Signer(canvas_keys[0].kid)  # Canvas's key id, another key
    status, answer = open_stack.post(signed(impostor, course_updated(tenant, course_id)), "application/jwt")
    assert (status, answer["reason"]) == (401, "bad_signature")
    assert open_stack.queued() == 0


def test_tokens_with_made_up_key_ids_cost_at_most_one_jwks_fetch(
    open_stack: Deployment, tenant: Tenant, course_id: int, canvas_keys: tuple[Signer, JwksServer]
) -> None:
    signer, jwks_server = canvas_keys
    open_stack.post(signed(signer, course_updated(tenant, course_id)), "application/jwt")  # keys held
    open_stack.consume()
    fetches = jwks_server.fetches
    for attempt in range(10):
        token = signer.token(
            {**course_updated(tenant, course_id), "iat": int(time.time())}, kid=f"kid-{attempt}"
        )
        assert open_stack.post(token, "application/jwt") == (
            401,
            {"error": "invalid signature", "reason": "unknown_kid"},
        )
    assert jwks_server.fetches - fetches <= 1


# -- hostile bodies -----------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [30_000, 5_000, 40])  # past json's C stack; parseable; deeper than Canvas's
def test_a_deeply_nested_json_body_is_a_clear_400_not_a_500(
    open_stack: Deployment, tenant: Tenant, course_id: int, depth: int
) -> None:
    nested = "[" * depth + "]" * depth
    inside_an_event = json.dumps(course_updated(tenant, course_id))[:-1] + f', "extra": {nested}}}'
    status, answer = open_stack.post(nested)
    assert status == 400 and answer["error"]
    status, answer = open_stack.post(inside_an_event)
    assert status == 400 and "nested too deeply" in answer["error"]
    assert open_stack.queued() == 0


def test_an_oversize_body_is_413_and_queues_nothing(
    open_stack: Deployment, tenant: Tenant, course_id: int
) -> None:
    huge = course_updated(tenant, course_id)
    huge["body"]["name"] = "x" * 70_000
    assert open_stack.post(json.dumps(huge))[0] == 413
    assert open_stack.queued() == 0


# -- where signed events are required ------------------------------------------------------------------
def test_unsigned_events_are_refused_with_401_where_signed_events_are_required(
    sim: RunningSimulator,
    strict_stack: Deployment,
    tenant: Tenant,
    tenants: list[Tenant],
    course_id: int,
    canvas_keys: tuple[Signer, JwksServer],
) -> None:
    status, answer = strict_stack.post(json.dumps(course_updated(tenant, course_id)))
    assert (status, answer["reason"]) == (401, "unsigned")
    assert strict_stack.queued() == 0
    status, answer = strict_stack.post(
        signed(canvas_keys[0], course_updated(tenant, course_id)), "application/jwt"
    )
    assert (status, answer) == (202, {"status": "queued", "signed": "true"})
    before = course_reads(sim)
    assert strict_stack.consume() == []
    assert course_reads(sim) - before == len(tenants)


def test_unsigned_events_queued_before_signatures_were_required_are_dropped_not_applied(
    sim: RunningSimulator, open_stack: Deployment, strict_stack: Deployment, tenant: Tenant, course_id: int
) -> None:
    assert open_stack.post(json.dumps(course_updated(tenant, course_id)))[0] == 202
    before = course_reads(sim)
    assert strict_stack.consume() == []  # dropped with a logged reason, not failed into the DLQ
    assert course_reads(sim) == before


def test_canvas_data_services_events_over_sqs_apply_where_signed_events_are_required(
    sim: RunningSimulator, strict_stack: Deployment, tenant: Tenant, tenants: list[Tenant], course_id: int
) -> None:
    strict_stack.from_data_services(course_updated(tenant, course_id))
    before = course_reads(sim)
    assert strict_stack.consume() == []
    assert course_reads(sim) - before == len(tenants)
