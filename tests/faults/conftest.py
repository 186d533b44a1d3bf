"""What every fault test checks afterwards, and the stack the cross-component faults run on.

After a fault: the export equals the simulator's ground truth (truth.py's oracle), nothing is duplicated,
and every course is either its previous roster or its whole new one, never a mix of the two.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from rostersync.services import Services
from rostersync.settings import Settings
from rostersync.sync.reports import export_roster
from rostersync_local.control import LOCAL_AWS_ENVIRONMENT, start_stack, stop_stack
from rostersync_local.truth import differences, expected_export
from tests.integration.conftest import Stack, calls_outside_the_manifest, services

__all__ = ["services"]  # the in-process moto of the integration tests, for library-level faults

ROSTER_KINDS = ("sections", "users", "enrollments")


def duplicates(export: dict[str, Any]) -> list[str]:
    """Courses, or a course's sections, users or enrollments, that the export holds more than once."""
    found = [
        f"course {course_id} x{count}"
        for course_id, count in Counter(c["canvas_id"] for c in export["courses"]).items()
        if count > 1
    ]
    for course in export["courses"]:
        for kind in ROSTER_KINDS:
            counts = Counter(item["canvas_id"] for item in course[kind])
            found += [f"course {course['canvas_id']} {kind} {i} x{n}" for i, n in counts.items() if n > 1]
    return found


def assert_matches_truth(export: dict[str, Any], truth: dict[str, Any], user_id_field: str) -> None:
    expected = expected_export(truth, user_id_field=user_id_field)
    assert expected, "an empty ground truth would prove nothing"
    assert differences(export, expected) == []
    assert duplicates(export) == []


def roster(course: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A course's sections, users and enrollments, comparable between an export and the oracle."""
    return {kind: sorted(course[kind], key=lambda item: item["canvas_id"]) for kind in ROSTER_KINDS}


def rosters(courses: dict[int, dict[str, Any]] | list[dict[str, Any]]) -> dict[int, Any]:
    values = courses.values() if isinstance(courses, dict) else courses
    return {course["canvas_id"]: roster(course) for course in values}


def half_written(observed: dict[int, Any], before: dict[int, Any], after: dict[int, Any]) -> list[str]:
    """Courses whose observed roster is neither the previous one nor the whole new one."""
    return [
        f"course {course_id}"
        for course_id, seen in observed.items()
        if seen != after.get(course_id) and seen != before.get(course_id)
    ]


class ExportWatcher:
    """Reads the export over and over while a faulty sync runs, keeping every distinct course roster seen."""

    def __init__(self, services: Services, tenant_id: str) -> None:
        # Its own clients: boto3 resources are not shared across threads.
        self._services, self._tenant_id = Services.from_settings(services.settings), tenant_id
        self.seen: dict[int, list[Any]] = {}
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ExportWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            for course_id, seen in rosters(export_roster(self._services, self._tenant_id)["courses"]).items():
                if seen not in self.seen.setdefault(course_id, []):
                    self.seen[course_id].append(seen)
            self.reads += 1
            self._stop.wait(0.2)  # two shared cores: leave the workers room

    def half_written(self, before: dict[int, Any], after: dict[int, Any]) -> list[str]:
        return [
            f"course {course_id}: {state}"
            for course_id, states in self.seen.items()
            for state in states
            if state != after.get(course_id) and state != before.get(course_id)
        ]


# -- the local stack, for faults across components (its own, so injected faults stay here) -----------
@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("fault-stack")
    state = start_stack(state_dir, seed=23, courses=8, retry_delay_seconds=1)
    try:
        yield Stack(
            state_dir=state_dir,
            api_url=state["api_url"],
            canvas_url=state["canvas_url"],
            aws_endpoint_url=state["aws_endpoint_url"],
            outputs=state["outputs"],
        )
        assert calls_outside_the_manifest(state["canvas_url"]) == []
    finally:
        stop_stack(state_dir)


@pytest.fixture(scope="module")
def stack_services(fault_stack: Stack) -> Iterator[Services]:
    """The library, in this process, on the stack's moto: for reading the export while a sync runs."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            **LOCAL_AWS_ENVIRONMENT,
            "AWS_ENDPOINT_URL": fault_stack.aws_endpoint_url,
        }.items():
            patch.setenv(name, value)
        outputs = fault_stack.outputs
        yield Services.from_settings(
            Settings(
                table_name=outputs["RosterTableName"],
                course_sync_queue_url=outputs["CourseSyncQueueUrl"],
                sync_request_queue_url=outputs["SyncRequestQueueUrl"],
                tenant_secret_prefix=outputs["TenantSecretPrefix"],
                allow_insecure_canvas_urls=True,
            )
        )


@pytest.fixture
def clean_canvas(fault_stack: Stack) -> Iterator[Stack]:
    """The stack's simulator with no fault, throttle, latency or short stall left over by a test."""
    normal = {
        "throttle": False, "fault_rate": 0.0, "timeout_rate": 0.0, "reset_rate": 0.0,
        "latency_ms": 0.0, "timeout_stall_seconds": 30.0,
    }  # fmt: skip
    yield fault_stack
    fault_stack.canvas("DELETE", "/_sim/faults")
    fault_stack.canvas("POST", "/_sim/config", json=normal)


def sim_get(url: str, path: str) -> Any:
    response = requests.get(f"{url}{path}", timeout=30)
    response.raise_for_status()
    return response.json()


def worker_hosts(runner_pid: int) -> list[int]:
    """The course worker's Lambda hosts: the runner's children running lambda_host for that function."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if (
            ppid == runner_pid
            and b"rostersync_local.lambda_host" in command
            and any(part.rstrip(b"/").endswith(b"course_sync_worker") for part in command)
        ):
            found.append(int(entry.name))
    return found


def runner_pid(stack: Stack) -> int:
    return int(json.loads((stack.state_dir / "stack.json").read_text())["pid"])


def kill(pid: int) -> None:
    os.kill(pid, 9)
