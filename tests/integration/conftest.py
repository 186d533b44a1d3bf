"""One local stack for the integration tests: moto server, Canvas simulator and the runner, over HTTP."""

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from moto.dynamodb.models import DynamoDBBackend
from moto.server import ThreadedMotoServer

from rostersync.authorization import begin_authorization, canvas_authorize_redirect, complete_authorization
from rostersync.canvas.models import CanvasCourse
from rostersync.canvas.scopes import declared_endpoint
from rostersync.models import CourseSyncMessage, Tenant
from rostersync.services import Services
from rostersync.settings import Settings
from rostersync.tenants import create_tenant
from rostersync_local import moto_server
from rostersync_local.canvas_sim import RunningSimulator
from rostersync_local.control import LOCAL_AWS_ENVIRONMENT, start_stack, stop_stack
from rostersync_local.runner import create_resources
from rostersync_local.template import load_stack


def calls_outside_the_manifest(canvas_url: str) -> list[str]:
    """Every Canvas API route the simulator served that no declared scope covers (least privilege)."""
    routes = requests.get(f"{canvas_url}/_sim/stats", timeout=30).json()["by_route"]
    outside = []
    for route in routes:
        method, _, path = route.partition(" ")
        if path.startswith("/login/oauth2/"):
            continue
        concrete = "/".join("1" if part.startswith(":") else part for part in path.split("/"))
        if declared_endpoint(method, concrete) is None:
            outside.append(route)
    return outside


def secrets_in_our_logs(canvas_url: str, log_dir: Path) -> list[str]:
    """Which issued client secrets, codes or tokens appear in a log line of ours (functions and runner).

    The simulator's and moto's logs are left out: they stand for Canvas and AWS, which hold the secrets."""
    issued = requests.get(f"{canvas_url}/_sim/issued_secrets", timeout=30).json()
    ours = [path for path in log_dir.glob("*.log") if path.name not in {"canvas-sim.log", "moto.log"}]
    assert ours and sum(path.stat().st_size for path in ours) > 0, "no function logs to scan"
    assert issued, "the simulator issued no secret: the scan would prove nothing"
    return [
        f"{path.name}: a secret starting {secret[:4]}"
        for path in ours
        for secret in issued
        if secret in path.read_text(errors="replace")
    ]


@dataclass(frozen=True)
class Stack:
    state_dir: Path
    api_url: str
    canvas_url: str
    aws_endpoint_url: str
    outputs: dict[str, str]

    def cli(self, *arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rostersync_cli.main", *arguments],
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, "ROSTERSYNC_STATE_DIR": str(self.state_dir)},
            check=False,
            timeout=300,
        )

    def cli_ok(self, *arguments: str, stdin: str | None = None) -> str:
        completed = self.cli(*arguments, stdin=stdin)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout.strip()

    def canvas(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{self.canvas_url}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def aws(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def tenant_secret(self, tenant_id: str) -> dict[str, Any]:
        """What Secrets Manager holds for a tenant (client secret and tokens), read directly."""
        secret_id = f"{self.outputs['TenantSecretPrefix']}/{tenant_id}"
        value: dict[str, Any] = json.loads(
            self.aws("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
        )
        return value

    def developer_key(self, **fields: Any) -> dict[str, Any]:
        key: dict[str, Any] = self.canvas(
            "POST",
            "/_sim/developer_keys",
            json={"name": "rostersync tests", "redirect_uri": f"{self.api_url}/oauth/callback", **fields},
        )
        return key

    def add_tenant(self, *extra: str, name: str = "Test University") -> str:
        key = self.developer_key()
        return self.cli_ok(
            "tenant", "add", "--name", name, "--canvas-url", self.canvas_url,
            "--client-id", key["client_id"], "--client-secret", "-",
            "--allow-insecure-canvas", *extra, stdin=key["client_secret"] + "\n",
        )  # fmt: skip

    def connect_tenant(self, *extra: str) -> str:
        tenant_id = self.add_tenant(*extra)
        page = requests.get(self.cli_ok("tenant", "authorize", tenant_id), timeout=30)
        assert page.status_code == 200, page.text
        return tenant_id

    def export(self, tenant_id: str) -> dict[str, Any]:
        exported: dict[str, Any] = json.loads(
            self.cli_ok("roster", "export", "--tenant", tenant_id, "--format", "json")
        )
        return exported


@contextlib.contextmanager
def running_stack(state_dir: Path, **options: Any) -> Iterator[Stack]:
    """A local stack for the tests' duration; at its end, every Canvas request it made and every log line
    it wrote are checked (not a sample)."""
    state = start_stack(state_dir, retry_delay_seconds=1, **options)
    try:
        yield Stack(
            state_dir=state_dir,
            api_url=state["api_url"],
            canvas_url=state["canvas_url"],
            aws_endpoint_url=state["aws_endpoint_url"],
            outputs=state["outputs"],
        )
        assert calls_outside_the_manifest(state["canvas_url"]) == []
        assert secrets_in_our_logs(state["canvas_url"], state_dir / "logs") == []
    finally:
        stop_stack(state_dir)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The table's stream is left unread: no test on this stack reads the roster event bus, and publishing
    # every change of every test's tenants would cost the suite minutes. test_delivery_api has its own.
    with running_stack(tmp_path_factory.mktemp("stack"), seed=11, courses=14, stream_sources=False) as stack:
        yield stack


# -- the library against moto's server and an in-process simulator (no runner) ---------------------
REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"  # never called: tests follow the redirect themselves
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)  # in-process moto servers share one state
    with pytest.MonkeyPatch.context() as patch:
        # As the local stack's moto runs it: course commits are transactions, from several workers at once.
        # A write's condition is checked and the write made at once, as DynamoDB does.
        patch.setattr(DynamoDBBackend, "transact_write_items", moto_server.check_then_write)
        for name in moto_server.ITEM_WRITES:
            locked = moto_server.one_write_at_a_time(getattr(DynamoDBBackend, name))
            patch.setattr(DynamoDBBackend, name, locked)
        for name, value in {**LOCAL_AWS_ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(name, value)
        model = load_stack(ROOT / "template.yaml", "conn-test", {"AllowInsecureCanvasUrls": "true"}, endpoint)
        create_resources(model, endpoint)
        outputs = model.outputs
        settings = Settings(
            table_name=outputs["RosterTableName"],
            course_sync_queue_url=outputs["CourseSyncQueueUrl"],
            sync_request_queue_url=outputs["SyncRequestQueueUrl"],
            tenant_secret_prefix=outputs["TenantSecretPrefix"],
            allow_insecure_canvas_urls=True,
            canvas_concurrency_per_tenant=2,
            canvas_slot_wait_seconds=0.5,
        )
        yield Services.from_settings(settings)
    server.stop()


def new_tenant(services: Services, sim: RunningSimulator, name: str = "Tokens") -> Tenant:
    """A tenant with a fresh developer key of the simulator, not yet authorized."""
    key = requests.post(
        f"{sim.url}/_sim/developer_keys", json={"name": "t", "redirect_uri": REDIRECT_URI}, timeout=10
    ).json()
    return create_tenant(
        services,
        name=name,
        canvas_url=sim.url,
        client_id=key["client_id"],
        client_secret=key["client_secret"],
        allow_insecure_canvas=True,
    )


def connect(services: Services, sim: RunningSimulator) -> Tenant:
    tenant = new_tenant(services, sim)
    state = parse_qs(
        urlsplit(begin_authorization(services, tenant.tenant_id, "http://127.0.0.1:9", "operator")).query
    )["state"][0]
    redirect = canvas_authorize_redirect(services, state, REDIRECT_URI)
    authorize = requests.get(redirect.location, allow_redirects=False, timeout=10)
    code = parse_qs(urlsplit(authorize.headers["Location"]).query)["code"][0]
    return complete_authorization(services, state, code, None, redirect.browser_binding)


def message(tenant: Tenant, course: CanvasCourse) -> CourseSyncMessage:
    return CourseSyncMessage(tenant_id=tenant.tenant_id, run_id="run-1", course=course)
