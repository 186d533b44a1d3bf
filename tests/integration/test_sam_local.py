"""What `sam local invoke` does with every sample under events/, without Docker.

After `sam build` (cached), each function runs from .aws-sam/build in its own python3.13 process with only
its folder and the built layer on the path and the variables of events/env.local.json (the container's
addresses rewritten to this stack's), against a local stack started as the README says for sam local
(`local up --no-functions`, so nothing but the sample consumes what it produces) and seeded with
`rostersync local seed`. Each sample's outcome is checked in what it answers and in what it leaves in
DynamoDB, SQS and Canvas. A package missing from layers/common/requirements.txt fails here.
"""

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import jsonschema
import pytest
import requests

from rostersync.delivery.reading import FeedPosition, changes_after, feed_cursor
from rostersync.grades.verify import verify_batch
from rostersync.models import RunStatus, TenantStatus
from rostersync.services import Services
from rostersync.settings import Settings
from rostersync.sync.reports import export_roster
from rostersync_local import sam_local
from rostersync_local.canvas_sim.live_events import SHARD_ID, SHARD_OFFSET
from rostersync_local.control import LOCAL_AWS_ENVIRONMENT, REPO_ROOT, start_stack, stop_stack
from rostersync_local.runner import free_port
from rostersync_local.seed import (
    COURSE_WORKER_RUN_ID,
    DECLINED_CALLBACK_STATE,
    DEMO_TENANT_ID,
    GRADE_BATCH_ID,
    SAMPLE_CLIENT_ID,
    SAMPLE_COURSE_ID,
    START_STATE,
)
from rostersync_local.truth import differences, expected_export

pytestmark = pytest.mark.integration
SAM = REPO_ROOT / ".tools" / "sam" / "bin" / "sam"
EVENTS = REPO_ROOT / "events"


@dataclass
class SamLocalStack:
    state: dict[str, Any]
    state_dir: Path
    services: Services
    env_vars: dict[str, Any]

    def invoke(self, function: str, event: Any) -> sam_local.LocalInvocation:
        built = sam_local.built_function(function)
        environment = sam_local.container_environment(built, self.env_vars, self.state)
        return sam_local.invoke_built_function(built, event, environment)

    def cli(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rostersync_cli.main", *arguments],
            capture_output=True, text=True, check=False, timeout=120,
            env={**os.environ, "ROSTERSYNC_STATE_DIR": str(self.state_dir)},
        )  # fmt: skip

    def sqs(self) -> Any:
        return boto3.client(
            "sqs", endpoint_url=self.state["aws_endpoint_url"], region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local",
        )  # fmt: skip

    def drain(self, output: str) -> list[str]:
        """Every message waiting in a queue of the stack (by its output name), removed from it."""
        sqs, url, bodies = self.sqs(), self.state["outputs"][output], []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            bodies += [message["Body"] for message in messages]
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
            )
        return bodies

    def ground_truth(self) -> dict[str, Any]:
        truth: dict[str, Any] = requests.get(
            f"{self.state['canvas_url']}/_sim/ground_truth", timeout=30
        ).json()
        return truth


def _sam_build() -> None:
    if not SAM.exists():
        pytest.fail(
            f"SAM CLI is not installed at {SAM}: run `make {SAM.relative_to(REPO_ROOT)}` (make test does)"
        )
    # sam build looks for python3.13 on the PATH: this interpreter's folder has it.
    environment = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    built = subprocess.run(
        [str(SAM), "build", "--parallel", "--cached"],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamLocalStack]:
    _sam_build()
    env_vars = sam_local.read_env_vars(sam_local.ENV_VARS_FILE)
    sam_local.check_env_vars(env_vars)  # a block for a function the template lacks fails here, by name
    state_dir = tmp_path_factory.mktemp("sam-local")
    # The samples' simulator (the default seed and size); the ports pinned as `--aws-port` and
    # `--canvas-port` pin them (free ones here, not the 4566/4567 convention, which may be taken).
    state = start_stack(state_dir, functions=False, aws_port=free_port(), canvas_port=free_port())
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in {
                **LOCAL_AWS_ENVIRONMENT,
                "AWS_ENDPOINT_URL": state["aws_endpoint_url"],
            }.items():
                patch.setenv(name, value)
            outputs = state["outputs"]
            services = Services.from_settings(
                Settings(
                    table_name=outputs["RosterTableName"],
                    course_sync_queue_url=outputs["CourseSyncQueueUrl"],
                    sync_request_queue_url=outputs["SyncRequestQueueUrl"],
                    tenant_secret_prefix=outputs["TenantSecretPrefix"],
                    grades_queue_url=outputs["GradesQueueUrl"],
                    allow_insecure_canvas_urls=True,
                )
            )
            running = SamLocalStack(state, state_dir, services, env_vars)
            seeded = running.cli("local", "seed")
            assert seeded.returncode == 0, seeded.stderr
            assert json.loads(seeded.stdout)["tenant_id"] == DEMO_TENANT_ID
            yield running
    finally:
        stop_stack(state_dir)


def _sample(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def _failure(invocation: sam_local.LocalInvocation) -> str:
    error = invocation.error or {}
    return (
        f"{error.get('errorType')}: {str(error.get('errorMessage'))[-1500:]}\nlog: {invocation.log[-1500:]}"
    )


def _http(invocation: sam_local.LocalInvocation, status: int) -> dict[str, Any]:
    assert invocation.error is None, _failure(invocation)
    payload: dict[str, Any] = invocation.payload
    assert payload["statusCode"] == status, f"{payload}\n{invocation.log[-3000:]}"
    return payload


def _batch(invocation: sam_local.LocalInvocation) -> None:
    assert invocation.error is None, _failure(invocation)
    assert invocation.payload == {"batchItemFailures": []}, invocation.log[-3000:]


# -- each sample and what it must do (in this order: the scheduler finds the demo tenant due, the live
# event reaches the course before the worker does) ----------------------------------------------------
def check_scheduler(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    assert invocation.error is None, _failure(invocation)
    (requested,) = invocation.payload["requested"]
    assert requested["tenant_id"] == DEMO_TENANT_ID and requested["trigger"] == "schedule"
    (message,) = stack.drain("SyncRequestQueueUrl")
    assert json.loads(message)["run_id"] == requested["run_id"]


def check_health(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    assert json.loads(_http(invocation, 200)["body"]) == {"status": "ok"}


def check_console(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    page = _http(invocation, 200)
    assert page["headers"]["Content-Type"].startswith("text/html") and "<html" in page["body"]
    assert "frame-ancestors 'none'" in page["headers"]["Content-Security-Policy"]


def check_oauth_start(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    redirect = _http(invocation, 302)
    location = urlsplit(redirect["headers"]["Location"])
    assert (
        f"{location.scheme}://{location.netloc}{location.path}"
        == f"{stack.state['canvas_url']}/login/oauth2/auth"
    )
    query = parse_qs(location.query)
    assert query["state"] == [f"{DEMO_TENANT_ID}.{START_STATE}"]
    assert query["client_id"] == [stack.services.table.get_tenant(DEMO_TENANT_ID).client_id]  # type: ignore[union-attr]
    assert any(cookie.startswith("rostersync_oauth=") for cookie in redirect["cookies"])


def check_tenant(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    overview = json.loads(_http(invocation, 200)["body"])
    assert overview["tenant_id"] == DEMO_TENANT_ID and overview["status"] == "active"


def check_runs(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    runs = json.loads(_http(invocation, 200)["body"])
    assert COURSE_WORKER_RUN_ID in {run["run"]["run_id"] for run in runs}


def check_sync_now(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    run_id = json.loads(_http(invocation, 202)["body"])["run_id"]
    (message,) = stack.drain("SyncRequestQueueUrl")
    request = json.loads(message)
    assert (request["run_id"], request["course_ids"], request["trigger"]) == (
        run_id,
        [SAMPLE_COURSE_ID],
        "manual",
    )


def check_self_test(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    report = json.loads(_http(invocation, 200)["body"])
    assert report["passed"] is True, report


def check_add_tenant(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    created = json.loads(_http(invocation, 201)["body"])
    tenant = stack.services.table.get_tenant(created["tenant_id"])
    assert tenant is not None and tenant.name == "Second University"
    assert tenant.status is TenantStatus.NOT_CONFIGURED


def check_submit_grades(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    batch_id = json.loads(_http(invocation, 202)["body"])["batch_id"]
    (message,) = stack.drain("GradesQueueUrl")
    assert json.loads(message) == {"tenant_id": DEMO_TENANT_ID, "batch_id": batch_id}


def check_callback_refused_code(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    # The function got as far as Canvas's token endpoint with the tenant's key; Canvas refused the code.
    page = _http(invocation, 400)
    assert "could not connect to Canvas" in page["body"] and "invalid_grant" in page["body"]
    assert stack.services.table.get_tenant(DEMO_TENANT_ID).status is TenantStatus.ACTIVE  # type: ignore[union-attr]


def check_callback_declined(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    assert "declined access" in _http(invocation, 400)["body"]
    assert stack.services.table.peek_oauth_state(DEMO_TENANT_ID, DECLINED_CALLBACK_STATE) is None  # spent


def check_planner(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    _batch(invocation)
    run_id = json.loads(_sample("sync_planner.json")["Records"][0]["body"])["run_id"]
    run = stack.services.table.get_run(DEMO_TENANT_ID, run_id)
    assert run is not None and run.status is RunStatus.RUNNING
    messages = [json.loads(body) for body in stack.drain("CourseSyncQueueUrl")]
    published = {
        course["id"] for course in stack.ground_truth()["courses"] if course["workflow_state"] == "available"
    }
    planned = {message["course"]["id"] for message in messages}
    assert run.courses_total == len(messages) == len(planned) > 0
    assert planned <= published and SAMPLE_COURSE_ID in planned
    assert {message["run_id"] for message in messages} == {run_id}


def _sample_enrollment_key() -> dict[str, str]:
    """The DynamoDB key of the enrollment the live-event sample names (Canvas sends global ids)."""
    event = json.loads(_sample("live_events.json")["Records"][0]["body"])
    enrollment_id = int(event["body"]["enrollment_id"]) - SHARD_ID * SHARD_OFFSET
    return {"pk": f"T#{DEMO_TENANT_ID}#C#{SAMPLE_COURSE_ID}", "sk": f"ENROLLMENT#{enrollment_id}"}


def check_live_event(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    _batch(invocation)
    # Applied by re-reading the course from Canvas: the event's enrollment is stored now.
    stored = stack.services.table._table.get_item(Key=_sample_enrollment_key()).get("Item")
    assert stored is not None


def check_worker(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    _batch(invocation)
    export = export_roster(stack.services, DEMO_TENANT_ID)
    export["courses"] = [course for course in export["courses"] if course["canvas_id"] == SAMPLE_COURSE_ID]
    expected = {SAMPLE_COURSE_ID: expected_export(stack.ground_truth())[SAMPLE_COURSE_ID]}
    assert export["courses"] and differences(export, expected) == []
    run = stack.services.table.get_run(DEMO_TENANT_ID, COURSE_WORKER_RUN_ID)
    assert run is not None and run.status is RunStatus.COMPLETED  # its one pending course is done


def check_grade_passback(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    _batch(invocation)
    verification = verify_batch(stack.services, DEMO_TENANT_ID, GRADE_BATCH_ID)  # read back from Canvas
    assert verification.all_match, verification


def check_intake(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    assert json.loads(_http(invocation, 202)["body"]) == {"status": "queued", "signed": "false"}
    assert stack.drain("LiveEventsQueueUrl") == [_sample("live_events_intake.json")["body"]]


def check_delivery_changes(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    # The seeded client's feed: the live event's and the worker's commits of the sample course.
    page = json.loads(_http(invocation, 200)["body"])
    assert {change["course_id"] for change in page["items"]} == {SAMPLE_COURSE_ID}
    assert len(page["items"]) == 10 and page["next"] == page["items"][-1]["cursor"]  # the sample's limit


def check_feed_publisher(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    _batch(invocation)
    # The sample's entry (the tenant's first commit, its first three changes) is on the bus: the
    # example consumer's queue has them, each valid against its detail-type's schema.
    events = [json.loads(body) for body in stack.drain("ExampleConsumerQueueUrl")]
    feed = changes_after(stack.services.table, DEMO_TENANT_ID, None, 3).items
    assert [(e["detail"]["type"], e["detail"]["course_id"], e["detail"]["data"]) for e in events] == [
        (change.type.value, change.course_id, change.data) for change in feed
    ]
    # Their ids are positions in the entry as the sample's stream record states it (three changes).
    assert [event["detail"]["id"] for event in events] == [
        feed_cursor(FeedPosition(1, index, 3)) for index in range(3)
    ]
    for event in events:
        schema = json.loads((EVENTS / "schemas" / f"{event['detail-type']}.json").read_text())
        jsonschema.validate(event, schema)


def check_delivery_audience(stack: SamLocalStack, invocation: sam_local.LocalInvocation) -> None:
    # The seed registers its client without touching the authorizer (as a deploy would have left it): the
    # repair lets it in, on the HTTP API moto made (the env-vars file names it, the stack knows its id).
    assert invocation.error is None, _failure(invocation)
    assert invocation.payload == {"added": [SAMPLE_CLIENT_ID], "removed": []}, invocation.log[-3000:]
    apigateway = boto3.client(
        "apigatewayv2", endpoint_url=stack.state["aws_endpoint_url"], region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local",
    )  # fmt: skip
    (authorizer,) = [
        item
        for item in apigateway.get_authorizers(ApiId=stack.state["outputs"]["HttpApiId"])["Items"]
        if item["Name"] == "ClientJwt"
    ]
    audience = [stack.state["outputs"]["ClientJwtAudience"], SAMPLE_CLIENT_ID]
    assert authorizer["JwtConfiguration"]["Audience"] == audience


Check = Callable[[SamLocalStack, sam_local.LocalInvocation], None]
SAMPLES: list[tuple[str, str, Check]] = [
    ("sync_scheduler.json", "SyncSchedulerFunction", check_scheduler),
    ("admin_api_health.json", "AdminApiFunction", check_health),
    ("admin_api_console.json", "AdminApiFunction", check_console),
    ("admin_api_oauth_start.json", "AdminApiFunction", check_oauth_start),
    ("admin_api_tenant.json", "AdminApiFunction", check_tenant),
    ("admin_api_runs.json", "AdminApiFunction", check_runs),
    ("admin_api_sync.json", "AdminApiFunction", check_sync_now),
    ("admin_api_self_test.json", "AdminApiFunction", check_self_test),
    ("admin_api_add_tenant.json", "AdminApiFunction", check_add_tenant),
    ("admin_api_grades.json", "AdminApiFunction", check_submit_grades),
    ("oauth_callback.json", "OAuthCallbackFunction", check_callback_refused_code),
    ("oauth_callback_access_denied.json", "OAuthCallbackFunction", check_callback_declined),
    ("sync_planner.json", "SyncPlannerFunction", check_planner),
    ("live_events.json", "LiveEventsFunction", check_live_event),
    ("course_sync_worker.json", "CourseSyncWorkerFunction", check_worker),
    ("grade_passback.json", "GradePassbackFunction", check_grade_passback),
    ("live_events_intake.json", "LiveEventsIntakeFunction", check_intake),
    ("delivery_api_changes.json", "DeliveryApiFunction", check_delivery_changes),
    ("feed_publisher.json", "FeedPublisherFunction", check_feed_publisher),
    ("delivery_audience.json", "DeliveryAudienceFunction", check_delivery_audience),
]


def test_every_sample_is_checked() -> None:
    samples = {path.name for path in EVENTS.glob("*.json")} - {sam_local.ENV_VARS_FILE.name}
    assert samples == {name for name, _, _ in SAMPLES}


def test_each_sample_does_its_work_as_sam_local_invoke_runs_it(stack: SamLocalStack) -> None:
    assert stack.services.table._table.get_item(Key=_sample_enrollment_key()).get("Item") is None
    for name, function, check in SAMPLES:
        invocation = stack.invoke(function, _sample(name))
        try:
            check(stack, invocation)
        except AssertionError as failure:
            raise AssertionError(f"events/{name} ({function}): {failure}") from failure


def test_a_signed_intake_sample_is_queued_as_signed(stack: SamLocalStack) -> None:
    signed = stack.cli("local", "signed-event", str(EVENTS / "live_events_intake.json"))
    assert signed.returncode == 0, signed.stderr
    event = json.loads(signed.stdout)
    invocation = stack.invoke("LiveEventsIntakeFunction", event)
    assert json.loads(_http(invocation, 202)["body"]) == {"status": "queued", "signed": "true"}
    assert stack.drain("LiveEventsQueueUrl") == [event["body"]]
    forged = {
        **event,
        "body": event["body"][:-4] + ("AAAA" if not event["body"].endswith("AAAA") else "BBBB"),
    }
    refused = json.loads(_http(stack.invoke("LiveEventsIntakeFunction", forged), 401)["body"])
    assert refused["error"] == "invalid signature"
    assert stack.drain("LiveEventsQueueUrl") == []


def test_the_stack_listens_on_the_pinned_ports_and_refuses_taken_ones(
    stack: SamLocalStack, tmp_path: Path
) -> None:
    aws_port = urlsplit(stack.state["aws_endpoint_url"]).port
    assert stack.state["outputs"]["CourseSyncQueueUrl"].startswith(f"http://127.0.0.1:{aws_port}/")
    assert stack.state["api_url"] == "http://127.0.0.1:3000"  # sam local start-api's, with --no-functions
    assert stack.state["schedules"] == [] and stack.state["functions"] is False
    with pytest.raises(RuntimeError, match=f"cannot listen on port {aws_port}"):
        start_stack(tmp_path / "second", functions=False, aws_port=aws_port or 0)


def test_the_cli_runs_a_sample_and_says_in_one_line_when_the_stack_is_down(
    stack: SamLocalStack, tmp_path: Path
) -> None:
    health = stack.cli("local", "invoke", "AdminApiFunction", "-e", str(EVENTS / "admin_api_health.json"))
    assert health.returncode == 0, health.stderr
    assert json.loads(json.loads(health.stdout)["body"]) == {"status": "ok"}
    down = subprocess.run(
        [sys.executable, "-m", "rostersync_cli.main", "local", "invoke", "AdminApiFunction",
         "-e", str(EVENTS / "admin_api_health.json")],
        capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "ROSTERSYNC_STATE_DIR": str(tmp_path / "none")},
    )  # fmt: skip
    assert down.returncode == 1
    assert down.stderr.count("\n") == 1 and "no local stack is running" in down.stderr, down.stderr


# SAM CLI's own resolution of a function's variables (its LocalLambdaRunner, run in SAM's venv).
SAM_RESOLVES = """
import json, sys
from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
stacks, _ = SamLocalStackProvider.get_stacks(sys.argv[1])
provider = SamFunctionProvider(stacks)
runner = LocalLambdaRunner(local_runtime=None, function_provider=provider, cwd=".", real_path=".",
                           env_vars_values=json.load(open(sys.argv[2])))
print(json.dumps({f.name: runner._make_env_vars(f).resolve() for f in provider.get_all()}))
"""


def test_each_function_gets_the_variables_sam_local_would_give_it(
    stack: SamLocalStack, tmp_path: Path
) -> None:
    resolved = subprocess.run(
        [str(SAM.parent / "python"), "-c", SAM_RESOLVES, str(sam_local.BUILD_DIR / "template.yaml"),
         str(sam_local.ENV_VARS_FILE)],
        capture_output=True, text=True, check=True, timeout=120,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SAM_CLI_TELEMETRY": "0"},
    )  # fmt: skip
    by_sam = json.loads(resolved.stdout)
    assert set(by_sam) == set(sam_local.declared_environments())
    for function, variables in by_sam.items():
        ours = sam_local.declared_values(function, stack.env_vars)
        assert ours == {name: variables[name] for name in ours}, function
