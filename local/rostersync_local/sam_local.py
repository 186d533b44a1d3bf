"""`sam local` against the local stack: the env-vars file it reads, and what `sam local invoke` does,
run without Docker.

`sam local` resolves a template's `!Ref RosterTable` to the string "RosterTable" and overrides, from
`--env-vars`, only variables the template declares. events/env.local.json therefore names the local
stack's resources for every function, and points AWS_ENDPOINT_URL (the template's AwsEndpointUrl) at
moto on the port convention below, through `host.docker.internal` as sam local's containers reach the
host. `env_vars_document` makes that file from the template; `invoke_built_function` runs a function of
`sam build`'s output the way `sam local invoke` would, but in a python3.13 process of this machine: only
the function's folder and the built layer on its path, sam local's AWS variables, the template's
variables with the file's overrides, the container addresses rewritten to the running stack's (and the
HTTP API's name to the id moto gave it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from rostersync_local.control import LOCAL_REGION, REPO_ROOT
from rostersync_local.runner import STACK_NAME
from rostersync_local.template import ACCOUNT_ID, load_stack, translate

DOCKER_HOST = "host.docker.internal"
# The convention: `rostersync local up --aws-port 4566 --canvas-port 4567` (4566 is LocalStack's port too).
AWS_PORT = 4566
CANVAS_PORT = 4567
CONTAINER_AWS_ENDPOINT = f"http://{DOCKER_HOST}:{AWS_PORT}"
CONTAINER_CANVAS_URL = f"http://{DOCKER_HOST}:{CANVAS_PORT}"
ENV_VARS_FILE = REPO_ROOT / "events" / "env.local.json"
BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
TEMPLATE = REPO_ROOT / "template.yaml"
# The template parameters that make a stack the local one (the runner sets the same).
LOCAL_PARAMETERS = {
    "AwsEndpointUrl": CONTAINER_AWS_ENDPOINT,
    "AllowInsecureCanvasUrls": "true",
    "LiveEventsJwksUrl": f"{CONTAINER_CANVAS_URL}/_sim/jwks.json",
}
# Resources whose ids moto chooses as the local stack makes them (logical id -> the output naming the id):
# the env-vars file can only hold their names (the HTTP API's in moto), the running stack's outputs the ids.
MOTO_CHOSEN_IDS = {"HttpApi": "HttpApiId"}
LAMBDA_HOST = Path(__file__).with_name("lambda_host.py")
# What `sam local` puts in every container when no AWS credentials are configured.
SAM_LOCAL_DEFAULT_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "defaultkey", "AWS_SECRET_ACCESS_KEY": "defaultsecret"}


class SamLocalError(Exception):
    """Why a function cannot be run as `sam local invoke` would; the message is one line."""


@dataclass(frozen=True)
class DeclaredVariable:
    value: str  # as `sam local` resolves it without an env-vars file
    names_a_resource: bool  # a Ref, GetAtt or Sub of a resource or the stack: sam local gets it wrong


def declared_environments(template: Path = TEMPLATE) -> dict[str, dict[str, DeclaredVariable]]:
    """Each function's variables, resolved as `sam local` does: parameters by their defaults, a resource
    by its logical id."""
    cfn, _ = translate(template)
    defaults = {name: str(spec.get("Default", "")) for name, spec in cfn.get("Parameters", {}).items()}
    environments = {}
    for logical_id, resource in cfn["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        variables = resource["Properties"].get("Environment", {}).get("Variables", {})
        environments[logical_id] = {
            name: _as_sam_local_resolves(value, defaults) for name, value in variables.items()
        }
    return environments


# What `sam local` takes a stack's pseudo parameters to be (it names the stack "local").
SAM_LOCAL_PSEUDO_PARAMETERS = {
    "AWS::StackName": "local",
    "AWS::Region": LOCAL_REGION,
    "AWS::AccountId": ACCOUNT_ID,
}


def _as_sam_local_resolves(value: Any, defaults: dict[str, str]) -> DeclaredVariable:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        name = str(value["Ref"])
        if name in defaults:
            return DeclaredVariable(defaults[name], False)
        return DeclaredVariable(SAM_LOCAL_PSEUDO_PARAMETERS.get(name, name), True)
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        names = re.findall(r"\$\{([\w:]+)\}", text)
        for name in names:
            text = text.replace(
                f"${{{name}}}", defaults.get(name) or SAM_LOCAL_PSEUDO_PARAMETERS.get(name, name)
            )
        return DeclaredVariable(text, any(name not in defaults for name in names))
    if isinstance(value, dict):
        return DeclaredVariable(json.dumps(value), True)  # no intrinsic of ours needs more
    return DeclaredVariable(str(value), False)


def env_vars_document(template: Path = TEMPLATE) -> dict[str, dict[str, str]]:
    """events/env.local.json: the local stack's values of every variable `sam local` would get wrong.

    Its `Parameters` block (every function) holds what makes the stack local: the AWS endpoint, the
    development flags; each function's block names that function's resources on the local stack."""
    local = load_stack(template, STACK_NAME, LOCAL_PARAMETERS, CONTAINER_AWS_ENDPOINT)
    declared = declared_environments(template)
    shared: dict[str, str] = {}
    per_function: dict[str, dict[str, str]] = {}
    for function, spec in sorted(local.functions.items()):
        per_function[function] = {}
        for name, value in sorted(spec.environment.items()):
            variable = declared[function][name]
            if variable.value == value:
                continue
            if variable.names_a_resource:
                per_function[function][name] = value
            else:
                shared[name] = value
    return {"Parameters": shared, **per_function}


def check_env_vars(document: dict[str, Any], template: Path = TEMPLATE) -> None:
    """Refuse blocks for functions the template lacks, and variables a function does not declare
    (`sam local` would ignore both without a word)."""
    declared = declared_environments(template)
    for block, variables in document.items():
        if not isinstance(variables, dict):
            raise SamLocalError(f"env-vars block {block!r} is not an object")
        if block != "Parameters" and block not in declared:
            raise SamLocalError(f"env-vars names function {block}, which the template does not have")
        known = set().union(*declared.values()) if block == "Parameters" else set(declared[block])
        unknown = sorted(set(variables) - known)
        if unknown:
            raise SamLocalError(
                f"env-vars block {block} sets {', '.join(unknown)}, which the template does not declare"
            )


@dataclass(frozen=True)
class BuiltFunction:
    logical_id: str
    code_dir: Path
    handler: str
    timeout_seconds: int
    memory_mb: int
    layer_dirs: tuple[Path, ...]


def built_function(logical_id: str, build_dir: Path = BUILD_DIR) -> BuiltFunction:
    """A function of `sam build`'s output (.aws-sam/build/template.yaml and its folders)."""
    built_template = build_dir / "template.yaml"
    if not built_template.is_file():
        raise SamLocalError(f"no sam build output in {build_dir}: run `sam build` first")
    template = yaml_parse(built_template.read_text())
    resources = template["Resources"]
    resource = resources.get(logical_id)
    if resource is None or resource["Type"] != "AWS::Serverless::Function":
        raise SamLocalError(f"the built template has no function {logical_id}")
    globals_ = template.get("Globals", {}).get("Function", {})
    properties = {**globals_, **resource["Properties"]}
    layers = []
    for layer in properties.get("Layers", []):
        layer_id = layer["Ref"] if isinstance(layer, dict) else str(layer)
        layers.append(build_dir / resources[layer_id]["Properties"]["ContentUri"] / "python")
    return BuiltFunction(
        logical_id=logical_id,
        code_dir=build_dir / properties["CodeUri"],
        handler=properties["Handler"],
        timeout_seconds=int(properties.get("Timeout", 3)),
        memory_mb=int(properties.get("MemorySize", 128)),
        layer_dirs=tuple(layers),
    )


def declared_values(function: str, env_vars: dict[str, Any], template: Path = TEMPLATE) -> dict[str, str]:
    """The function's own variables under `sam local --env-vars`: the file's value where it names one
    (its function block over its Parameters block), else what sam local resolves."""
    declared = declared_environments(template)[function]
    overrides = {**env_vars.get("Parameters", {}), **env_vars.get(function, {})}
    return {name: str(overrides.get(name, variable.value)) for name, variable in declared.items()}


def container_environment(
    function: BuiltFunction, env_vars: dict[str, Any], stack: dict[str, Any], template: Path = TEMPLATE
) -> dict[str, str]:
    """The variables `sam local invoke --env-vars` gives the function's container, with the container's
    addresses of the local stack rewritten to the running stack's own."""
    variables = declared_values(function.logical_id, env_vars, template)
    rewrites = {CONTAINER_AWS_ENDPOINT: stack["aws_endpoint_url"]}
    if stack.get("canvas_url"):
        rewrites[CONTAINER_CANVAS_URL] = stack["canvas_url"]
    chosen = {
        f"{STACK_NAME}-{logical_id}": stack["outputs"][output]
        for logical_id, output in MOTO_CHOSEN_IDS.items()
        if output in stack.get("outputs", {})
    }
    for name, value in variables.items():
        for container_address, address in rewrites.items():
            if value.startswith(container_address):
                variables[name] = address + value.removeprefix(container_address)
        variables[name] = chosen.get(variables[name], variables[name])
    function_name = function.logical_id
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": "UTC",
        "LAMBDA_TASK_ROOT": str(function.code_dir),
        "AWS_SAM_LOCAL": "true",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function.timeout_seconds),
        "AWS_LAMBDA_FUNCTION_HANDLER": function.handler,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "$LATEST",
        "AWS_REGION": LOCAL_REGION,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_ACCOUNT_ID": ACCOUNT_ID,
        **SAM_LOCAL_DEFAULT_CREDENTIALS,
        **variables,
    }


@dataclass(frozen=True)
class LocalInvocation:
    payload: Any
    error: dict[str, Any] | None
    log: str
    duration_seconds: float


# The process's whole import path is set here: the function's folder first (lambda_host puts it there),
# then the layer, as Lambda orders /var/task and /opt/python; no site-packages (-S), no script folder (-I).
_BOOTSTRAP = (
    "import runpy, sys\n"
    "sys.path[:0] = sys.argv.pop(3).split(':')\n"
    "runpy.run_path(sys.argv.pop(3), run_name='__main__')\n"
)


def invoke_built_function(
    function: BuiltFunction, event: Any, environment: dict[str, str], python: str = sys.executable
) -> LocalInvocation:
    """Run one event through a fresh process of the built function, as `sam local invoke` runs one
    through a fresh container."""
    for folder in (function.code_dir, *function.layer_dirs):
        if not folder.is_dir():
            raise SamLocalError(f"{folder} is missing: run `sam build` again")
    layer_path = ":".join(str(folder) for folder in function.layer_dirs)
    request = {"event": event, "request_id": "sam-local", "deadline": time.time() + function.timeout_seconds}
    started = time.monotonic()
    process = subprocess.run(  # noqa: S603 - our own interpreter and host script
        [python, "-I", "-S", "-c", _BOOTSTRAP, str(function.code_dir), function.handler, layer_path,
         str(LAMBDA_HOST)],
        input=json.dumps(request) + "\n",
        capture_output=True,
        text=True,
        env=environment,
        timeout=function.timeout_seconds + 30,
        check=False,
    )  # fmt: skip
    duration = time.monotonic() - started
    reply = process.stdout.strip().splitlines()
    if not reply:
        error = {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"the process exited ({process.returncode})",
        }
        return LocalInvocation(None, error, process.stderr, duration)
    answer = json.loads(reply[-1])
    return LocalInvocation(answer.get("result"), answer.get("error"), process.stderr, duration)


def read_env_vars(path: Path) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise SamLocalError(f"no env-vars file {path}") from None
    except ValueError as error:
        raise SamLocalError(f"{path} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise SamLocalError(f"{path} is not a JSON object")
    return document


def main() -> int:
    """`python -m rostersync_local.sam_local env-vars`: events/env.local.json as the template makes it."""
    if sys.argv[1:] != ["env-vars"]:
        print("usage: python -m rostersync_local.sam_local env-vars > events/env.local.json", file=sys.stderr)
        return 2
    print(json.dumps(env_vars_document(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
