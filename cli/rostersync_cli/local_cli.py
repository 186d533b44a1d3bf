"""`rostersync local seed|invoke|signed-event` and `admin token --event`: the samples under events/ and
`sam local` against the local stack.

The local stack's modules (samtranslator, werkzeug) are imported inside each command: a deployed
stack's CLI never loads them.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from rostersync.services import Services
from rostersync_local.control import REPO_ROOT, read_state

Bind = Callable[[argparse.Namespace], Services]
# How to start a stack for `sam local` (its functions run there), with the README's port convention.
UP_FOR_SAM_LOCAL = "rostersync local up --aws-port 4566 --canvas-port 4567 --no-functions"
# A deployed stack's user pool and app client, as the samples' authorizer claims name them.
SAMPLE_ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Sample0001"
SAMPLE_CLIENT_ID = "3samp1ec1ient1d0000000000"


class LocalCliError(RuntimeError):
    pass


def _running_stack(arguments: argparse.Namespace) -> dict[str, Any]:
    state = read_state(arguments.state_dir)
    if state is None:
        raise LocalCliError(f"no local stack is running: start one with `{UP_FOR_SAM_LOCAL}`")
    return state


def cmd_local_seed(arguments: argparse.Namespace, bind: Bind) -> None:
    from rostersync_local.seed import seed_demo

    state = _running_stack(arguments)
    if not state.get("canvas_url"):
        raise LocalCliError(
            "the local stack runs without the Canvas simulator (--no-canvas-sim): nothing to seed"
        )
    print(json.dumps(seed_demo(bind(arguments), state["canvas_url"], state["api_url"]), indent=2))


def cmd_local_invoke(arguments: argparse.Namespace, _: Bind) -> None:
    from rostersync_local import sam_local

    state = _running_stack(arguments)
    try:
        event = json.loads(Path(arguments.event).read_text())
    except (OSError, ValueError) as error:
        raise LocalCliError(f"cannot read the event {arguments.event}: {error}") from None
    try:
        env_vars = sam_local.read_env_vars(arguments.env_vars)
        sam_local.check_env_vars(env_vars)
        function = sam_local.built_function(arguments.function, arguments.build_dir)
        environment = sam_local.container_environment(function, env_vars, state)
        invocation = sam_local.invoke_built_function(function, event, environment)
    except sam_local.SamLocalError as error:
        raise LocalCliError(str(error)) from None
    sys.stderr.write(invocation.log)
    if invocation.error is not None:
        failure = invocation.error
        raise LocalCliError(
            f"{arguments.function} failed: {failure.get('errorType')}: {failure.get('errorMessage')}"
        )
    print(json.dumps(invocation.payload, indent=2))


def cmd_local_signed_event(arguments: argparse.Namespace, _: Bind) -> None:
    state = _running_stack(arguments)
    if not state.get("canvas_url"):
        raise LocalCliError("signing needs the Canvas simulator, and this local stack runs without it")
    sample = json.loads(Path(arguments.file).read_text())
    is_api_event = isinstance(sample, dict) and "requestContext" in sample
    canvas_event = json.loads(sample["body"]) if is_api_event else sample
    response = requests.post(f"{state['canvas_url']}/_sim/live_events/sign", json=canvas_event, timeout=10)
    response.raise_for_status()
    token = str(response.json()["token"])
    if not is_api_event:
        print(token)
        return
    headers = {
        **sample.get("headers", {}),
        "content-type": "application/jwt",
        "content-length": str(len(token)),
    }
    print(json.dumps({**sample, "headers": headers, "body": token}, indent=2))


def admin_event(arguments: argparse.Namespace) -> dict[str, Any]:
    """`admin token --event "METHOD /path?query"`: the event API Gateway sends the admin function for that
    request by a tenant's admin (an operator with --operator), its JWT authorizer's claims included."""
    from rostersync_local.api_gateway import SAMPLE_EPOCH_MS, sample_event
    from rostersync_local.issuer import admin_claims, development_subject
    from rostersync_local.sam_local import TEMPLATE
    from rostersync_local.seed import DEMO_TENANT_ID

    method, _, target = arguments.event.strip().partition(" ")
    if not target.startswith("/"):
        raise LocalCliError(f"--event takes METHOD /path, e.g. 'GET /admin/tenant', not {arguments.event!r}")
    claims = admin_claims(
        SAMPLE_ISSUER,
        SAMPLE_CLIENT_ID,
        development_subject(arguments.tenant or DEMO_TENANT_ID, operator=arguments.operator),
        SAMPLE_EPOCH_MS // 1000,
    )
    routes = _template_routes(TEMPLATE)
    try:
        return sample_event(routes, method.upper(), target.strip(), body=arguments.body, claims=claims)
    except ValueError as error:
        raise LocalCliError(str(error)) from None


@functools.cache
def _template_routes(template: Path) -> list[Any]:
    from rostersync_local.template import load_stack

    return load_stack(template, "sample").routes


def add_sam_local_commands(local: Any, bind: Bind) -> None:
    """The `local` group's commands for the samples and `sam local`."""
    seed = local.add_parser(
        "seed", help="seed what the samples under events/ name (the demo tenant, connected)"
    )
    seed.set_defaults(handler=lambda arguments: cmd_local_seed(arguments, bind))
    invoke = local.add_parser(
        "invoke", help="run a built function on an event as `sam local invoke` would, without Docker"
    )
    invoke.add_argument("function", help="the function's logical id, e.g. AdminApiFunction")
    invoke.add_argument(
        "--event", "-e", required=True, help="the event file, e.g. events/admin_api_health.json"
    )
    invoke.add_argument("--env-vars", type=Path, default=REPO_ROOT / "events" / "env.local.json")
    invoke.add_argument("--build-dir", type=Path, default=REPO_ROOT / ".aws-sam" / "build")
    invoke.set_defaults(handler=lambda arguments: cmd_local_invoke(arguments, bind))
    signed = local.add_parser(
        "signed-event", help="a live-event sample signed now by the Canvas simulator (valid 10 minutes)"
    )
    signed.add_argument("file", help="an intake sample (API Gateway event) or a Canvas event")
    signed.set_defaults(handler=lambda arguments: cmd_local_signed_event(arguments, bind))
