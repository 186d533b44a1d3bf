"""Start, find and stop the local stack running in the background (`rostersync local up|down`).

Standard library only: the CLI imports it on every call, a deployed stack's too."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PUBLIC_ENDPOINTS = ("api_url", "aws_endpoint_url", "canvas_url")
LOCAL_REGION = "us-east-1"
# Local stand-ins for credentials: moto accepts any.
LOCAL_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": LOCAL_REGION,
    "AWS_REGION": LOCAL_REGION,
}


def default_state_dir() -> Path:
    return Path(os.environ.get("ROSTERSYNC_STATE_DIR", REPO_ROOT / ".rostersync" / "local"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The running stack's endpoints, or None when none runs there."""
    try:
        state: dict[str, Any] = json.loads((state_dir / "stack.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state if _alive(int(state["pid"])) else None


def public_endpoints(state: dict[str, Any]) -> dict[str, str]:
    return {name: state[name] for name in PUBLIC_ENDPOINTS if name in state}


def start_stack(
    state_dir: Path,
    *,
    canvas_sim: bool = True,
    seed: int = 7,
    courses: int = 60,
    canvas_cost: str = "documented",
    retry_delay_seconds: int | None = None,
    parameter_overrides: dict[str, str] | None = None,
    aws_port: int = 0,
    canvas_port: int = 0,
    functions: bool = True,
    stream_sources: bool = True,
    timeout_seconds: float = 120,
) -> dict[str, Any]:
    running = read_state(state_dir)
    if running is not None:
        return running
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    (state_dir / "stack.json").unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "rostersync_local.runner",
        "--state-dir",
        str(state_dir),
        "--seed",
        str(seed),
        "--courses",
        str(courses),
        "--canvas-cost",
        canvas_cost,
    ]
    if not canvas_sim:
        command.append("--no-canvas-sim")
    if retry_delay_seconds is not None:
        command += ["--retry-delay-seconds", str(retry_delay_seconds)]
    if aws_port:
        command += ["--aws-port", str(aws_port)]
    if canvas_port:
        command += ["--canvas-port", str(canvas_port)]
    if not functions:
        command.append("--no-functions")
    if not stream_sources:
        command.append("--no-stream-sources")
    for name, value in (parameter_overrides or {}).items():
        command += ["--parameter-override", f"{name}={value}"]
    log_path = state_dir / "logs" / "runner.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        state = read_state(state_dir)
        if state is not None and int(state["pid"]) == process.pid:
            return state
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the local stack did not start (exit {process.returncode}):\n{tail}")
        time.sleep(0.2)
    process.terminate()
    raise TimeoutError(f"the local stack did not start within {timeout_seconds} s; see {log_path}")


def stop_stack(state_dir: Path, timeout_seconds: float = 30) -> bool:
    """Stop the stack and everything it started; False when none was running."""
    state = read_state(state_dir)
    if state is None:
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when we are its parent (tests, the demo)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    (state_dir / "stack.json").unlink(missing_ok=True)
    return True
