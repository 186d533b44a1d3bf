"""Which stack the CLI works on: the running local stack, or a deployed one named with --stack."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import boto3

from rostersync.services import Services
from rostersync.settings import Settings
from rostersync_local.control import read_state
from rostersync_local.runner import LOCAL_AWS_ENVIRONMENT


class NoStackError(Exception):
    pass


@dataclass(frozen=True)
class StackBinding:
    services: Services
    api_url: str
    outputs: dict[str, str]
    control_url: str | None = None


def _settings(outputs: dict[str, str], allow_insecure: bool) -> Settings:
    return Settings(
        table_name=outputs["RosterTableName"],
        course_sync_queue_url=outputs["CourseSyncQueueUrl"],
        sync_request_queue_url=outputs["SyncRequestQueueUrl"],
        tenant_secret_prefix=outputs["TenantSecretPrefix"],
        live_events_queue_url=outputs.get("LiveEventsQueueUrl", ""),
        grades_queue_url=outputs.get("GradesQueueUrl", ""),
        allow_insecure_canvas_urls=allow_insecure,
    )


def bind(state_dir: Path, stack_name: str | None) -> StackBinding:
    if stack_name is None:
        state = read_state(state_dir)
        if state is None:
            raise NoStackError(
                "no local stack is running (start one with `rostersync local up`) and no --stack given"
            )
        os.environ.update(LOCAL_AWS_ENVIRONMENT)
        os.environ["AWS_ENDPOINT_URL"] = state["aws_endpoint_url"]
        outputs = {name: str(value) for name, value in state["outputs"].items()}
        return StackBinding(
            Services.from_settings(_settings(outputs, True)), state["api_url"], outputs, state["control_url"]
        )
    stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    if not stacks:
        raise NoStackError(f"no stack named {stack_name}")
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}
    parameters = {
        item["ParameterKey"]: item.get("ParameterValue") for item in stacks[0].get("Parameters", [])
    }
    allow_insecure = parameters.get("AllowInsecureCanvasUrls") == "true"
    return StackBinding(
        Services.from_settings(_settings(outputs, allow_insecure)), outputs["ApiUrl"], outputs
    )
