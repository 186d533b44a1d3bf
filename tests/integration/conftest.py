"""One local stack for the integration tests: moto server, Canvas simulator and the runner, over HTTP."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from rostersync.canvas.scopes import declared_endpoint
from rostersync_local.control import start_stack, stop_stack


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


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("stack")
    state = start_stack(state_dir, seed=11, courses=14, retry_delay_seconds=1)
    try:
        yield Stack(
            state_dir=state_dir,
            api_url=state["api_url"],
            canvas_url=state["canvas_url"],
            aws_endpoint_url=state["aws_endpoint_url"],
            outputs=state["outputs"],
        )
        # Checked over every request the whole session made, not a sample.
        assert calls_outside_the_manifest(state["canvas_url"]) == []
    finally:
        stop_stack(state_dir)
