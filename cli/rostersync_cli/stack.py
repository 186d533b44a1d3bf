"""Which stack the CLI works on: the running local stack, or a deployed one named with --stack.

A deployed stack's CLI needs boto3 and the library only: nothing here imports the local stack's runner
(moto, samtranslator, werkzeug are the `local` extra)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from rostersync.services import Services
from rostersync.settings import Settings
from rostersync_local.control import LOCAL_AWS_ENVIRONMENT, read_state

ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
NOT_ACCEPTED = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
}


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


def describe_aws_error(error: BotoCoreError | ClientError) -> str:
    """One line for an operator: what AWS said no to, and why (never a traceback)."""
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return "no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if isinstance(error, NoRegionError):
        return "no AWS region set (set AWS_REGION, or a region in your AWS profile)"
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach AWS at {error.kwargs.get('endpoint_url', 'its endpoint')}"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "Unknown")
        message = " ".join(str(error.response.get("Error", {}).get("Message", "")).split())
        if code in ACCESS_DENIED:
            return f"AWS refused {error.operation_name}: access denied ({message})"
        if code in EXPIRED:
            return f"AWS refused {error.operation_name}: the credentials have expired ({message})"
        if code in NOT_ACCEPTED:
            return f"AWS refused {error.operation_name}: it does not accept these credentials ({message})"
        return f"AWS {error.operation_name} failed: {code}: {message}"
    return f"AWS: {' '.join(str(error).split())}"


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
    cloudformation = boto3.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        text = str(error.response.get("Error", {}).get("Message", ""))
        if error.response.get("Error", {}).get("Code") == "ValidationError" and "does not exist" in text:
            raise NoStackError(f"no stack named {stack_name} in {cloudformation.meta.region_name}") from None
        raise
    if not stacks:
        raise NoStackError(f"no stack named {stack_name} in {cloudformation.meta.region_name}")
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}
    parameters = {
        item["ParameterKey"]: item.get("ParameterValue") for item in stacks[0].get("Parameters", [])
    }
    allow_insecure = parameters.get("AllowInsecureCanvasUrls") == "true"
    return StackBinding(
        Services.from_settings(_settings(outputs, allow_insecure)), outputs["ApiUrl"], outputs
    )
