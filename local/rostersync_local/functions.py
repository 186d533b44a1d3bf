"""Warm pools of Lambda hosts: a function's concurrent executions, each a child process."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rostersync_local.template import FunctionSpec

# What every host inherits from the runner; everything else comes from the template.
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


@dataclass
class Invocation:
    payload: Any = None
    error: dict[str, Any] | None = None
    duration_seconds: float = 0.0
    cold_start: bool = False


@dataclass
class FunctionStats:
    invocations: int = 0
    errors: int = 0
    cold_starts: int = 0
    timeouts: int = 0
    hosts: int = 0
    busy: int = 0
    durations: list[float] = field(default_factory=list)


class _Host:
    def __init__(self, spec: FunctionSpec, environment: dict[str, str], log: IO[bytes]) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "rostersync_local.lambda_host", str(spec.code_dir), spec.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=environment,
            text=True,
        )

    def invoke(self, event: Any, timeout_seconds: int) -> tuple[dict[str, Any] | None, bool]:
        """The host's reply, or None if it died; True when it timed out (then it is killed)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        deadline = time.time() + timeout_seconds
        request = {"event": event, "request_id": str(uuid.uuid4()), "deadline": deadline}
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return None, False
        ready, _, _ = select.select([self.process.stdout], [], [], max(deadline - time.time(), 0))
        if not ready:
            self.kill()
            return None, True
        line = self.process.stdout.readline()
        return (json.loads(line) if line else None), False

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        self.process.wait()


class FunctionPool:
    def __init__(
        self, spec: FunctionSpec, base_environment: dict[str, str], log_dir: Path, concurrency: int
    ) -> None:
        self.spec = spec
        self.stats = FunctionStats()
        self._environment = {
            **{name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ},
            **base_environment,
            **spec.environment,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_seconds),
        }
        self._log = (log_dir / f"{spec.logical_id}.log").open("ab")
        self._slots = threading.BoundedSemaphore(concurrency)
        self._idle: list[_Host] = []
        self._hosts: list[_Host] = []
        self._lock = threading.Lock()

    def invoke(self, event: Any) -> Invocation:
        with self._slots:
            with self._lock:
                host = None
                while self._idle and host is None:
                    host = self._idle.pop()
                    if not host.alive:  # it died between invocations: Lambda starts a new environment
                        self._hosts.remove(host)
                        host = None
                self.stats.busy += 1
            cold = host is None
            if host is None:
                host = _Host(self.spec, self._environment, self._log)
                with self._lock:
                    self._hosts.append(host)
                    self.stats.cold_starts += 1
            started = time.monotonic()
            reply, timed_out = host.invoke(event, self.spec.timeout_seconds)
            invocation = Invocation(cold_start=cold, duration_seconds=time.monotonic() - started)
            if timed_out:
                invocation.error = {
                    "errorType": "TimeoutError",
                    "errorMessage": f"Task timed out after {self.spec.timeout_seconds} s",
                }
            elif reply is None:
                invocation.error = {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": "the function's process exited",
                }
            elif "error" in reply:
                invocation.error = reply["error"]
            else:
                invocation.payload = reply.get("result")
            with self._lock:
                self.stats.invocations += 1
                self.stats.busy -= 1
                self.stats.errors += invocation.error is not None
                self.stats.timeouts += timed_out
                self.stats.durations.append(invocation.duration_seconds)
                if host.alive:
                    self._idle.append(host)
                else:
                    self._hosts.remove(host)
                self.stats.hosts = len(self._hosts)
            return invocation

    def close(self) -> None:
        with self._lock:
            for host in self._hosts:
                if host.process.stdin:
                    host.process.stdin.close()
            for host in self._hosts:
                try:
                    host.process.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    host.kill()
            self._hosts.clear()
            self._idle.clear()
        self._log.close()
