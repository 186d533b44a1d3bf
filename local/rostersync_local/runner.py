"""The embedded local stack: moto's server as AWS, the Canvas simulator, and the template wired up.

Run as `python -m rostersync_local.runner --state-dir DIR`; it writes DIR/stack.json when ready and
stops everything it started on SIGTERM. `rostersync local up|down` drives it (see control.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
import requests
from botocore.config import Config
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from rostersync_local.api_gateway import ApiGateway, Authorize
from rostersync_local.canvas_sim.config import COST_MODELS
from rostersync_local.control import LOCAL_AWS_ENVIRONMENT
from rostersync_local.functions import FunctionPool, Invocation
from rostersync_local.http_api import LiveAudienceAuthorizer, create_authorizers
from rostersync_local.identity_provider import LocalIdentityProvider, RegisteredClient, UserDirectory
from rostersync_local.queues import QueuePoller
from rostersync_local.schedules import ScheduleTimers
from rostersync_local.streams import StreamPoller
from rostersync_local.template import REGION, StackModel, UserPoolSpec, load_stack

logger = logging.getLogger("rostersync_local.runner")
REPO_ROOT = Path(__file__).resolve().parents[2]
STACK_NAME = "rostersync-local"
DEFAULT_CONCURRENCY = 2
# Where `sam local start-api` serves the API by default: the API URL of a stack whose functions run there.
SAM_LOCAL_API_URL = "http://127.0.0.1:3000"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_ready(url: str, timeout_seconds: float = 30) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up in {timeout_seconds} s")


class PathOnlyAccessLog(WSGIRequestHandler):
    """Access log lines without query strings: an OAuth callback's carries the authorization code."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.log("info", '"%s %s" %s %s', self.command, self.path.partition("?")[0], code, size)


class LocalStack:
    def __init__(
        self,
        state_dir: Path,
        *,
        canvas_sim: bool = True,
        seed: int = 7,
        courses: int = 60,
        canvas_cost: str = "documented",
        api_port: int = 0,
        aws_port: int = 0,
        canvas_port: int = 0,
        functions: bool = True,
        stream_sources: bool = True,
        retry_delay_seconds: int | None = None,
        parameter_overrides: dict[str, str] | None = None,
        template: Path = REPO_ROOT / "template.yaml",
    ) -> None:
        self.state_dir = state_dir
        self.log_dir = state_dir / "logs"
        self._canvas_sim = canvas_sim
        self._seed = seed
        self._courses = courses
        self._canvas_cost = canvas_cost
        self._api_port = api_port
        self._aws_port = aws_port
        self._canvas_port = canvas_port
        self._functions = functions
        self._stream_sources = stream_sources
        self._retry_delay = retry_delay_seconds
        self._parameter_overrides = parameter_overrides or {}
        self._template = template
        self._children: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self._servers: list[BaseWSGIServer] = []
        self._pools: dict[str, FunctionPool] = {}
        self._pollers: list[QueuePoller | StreamPoller] = []
        self._timers: ScheduleTimers | None = None
        self.endpoints: dict[str, Any] = {}

    # -- start ---------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        aws_endpoint_url = self._start_moto()
        canvas_url = self._start_canvas_simulator() if self._canvas_sim else None
        # The identity provider stands in for the user pool's hosted UI: its URL is the pool's issuer
        # (the authorizer's), so it listens before the template is read; it answers once the pool exists.
        self.identity = LocalIdentityProvider("http://127.0.0.1:0")
        idp_url = self._serve(self.identity, 0)
        self.identity.issuer_url = idp_url
        control = _LateBoundApp()
        control_url = self._serve(control, 0)
        api_port = self._api_port or free_port()
        api_url = f"http://127.0.0.1:{api_port}" if self._functions else SAM_LOCAL_API_URL
        overrides = {**self._parameter_overrides, "AllowInsecureCanvasUrls": "true"}
        if canvas_url:
            overrides["LiveEventsJwksUrl"] = f"{canvas_url}/_sim/jwks.json"
        # Twice: the user pool's and app client's ids are moto's, known once they are made.
        first = load_stack(self._template, STACK_NAME, overrides, aws_endpoint_url)
        made = {
            logical_id: create_user_pool(pool, aws_endpoint_url, f"{api_url}/console")
            for logical_id, pool in first.user_pools.items()
        }
        physical_ids = {name: value for pool in made.values() for name, value in pool.physical_ids.items()}
        # The HTTP API is made in moto too: its authorizers' audience is what `client add` rewrites.
        apigateway = boto3.client("apigatewayv2", endpoint_url=aws_endpoint_url, **_creds())
        if first.http_api is not None:
            physical_ids[first.http_api] = apigateway.create_api(
                Name=f"{STACK_NAME}-{first.http_api}", ProtocolType="HTTP"
            )["ApiId"]
        attributes = {(logical_id, "ProviderURL"): idp_url for logical_id in made}
        model = load_stack(
            self._template,
            STACK_NAME,
            overrides,
            aws_endpoint_url,
            physical_ids=physical_ids,
            attributes=attributes,
        )
        create_resources(model, aws_endpoint_url)
        authorize: Authorize = self.identity.verify
        if model.http_api is not None:
            api_id = physical_ids[model.http_api]
            create_authorizers(apigateway, api_id, model.routes)
            authorize = LiveAudienceAuthorizer(apigateway, api_id, self.identity.verify)
        self.console_client_id = next((client for pool in made.values() for client in pool.clients), "")
        for pool in made.values():
            self.identity.serve(pool.directory, pool.clients.values())
        control.target = self._control_app(model)
        if self._functions:
            self._start_functions(model, aws_endpoint_url, api_port, authorize)
        outputs = {**model.outputs, "ApiUrl": api_url}
        if "AdminSignInUrl" in outputs:  # the hosted UI it stands in for
            outputs["AdminSignInUrl"] = idp_url
        self.endpoints = {
            "api_url": api_url,
            "aws_endpoint_url": aws_endpoint_url,
            **({"canvas_url": canvas_url} if canvas_url else {}),
            "control_url": control_url,
            "idp_url": idp_url,
            "stack_name": STACK_NAME,
            "region": REGION,
            "outputs": outputs,
            "schedules": sorted(model.schedules) if self._functions else [],
            "functions": self._functions,
            "stream_sources": self._stream_sources,
            "log_dir": str(self.log_dir),
            "pid": os.getpid(),
        }
        state_file = self.state_dir / "stack.json"
        state_file.with_suffix(".tmp").write_text(json.dumps(self.endpoints, indent=2))
        state_file.with_suffix(".tmp").replace(state_file)
        return self.endpoints

    def _start_functions(
        self, model: StackModel, aws_endpoint_url: str, api_port: int, authorize: Authorize
    ) -> None:
        """The template's functions in warm pools, its routes, queue triggers and schedules."""
        sqs = boto3.client(
            "sqs", endpoint_url=aws_endpoint_url, config=Config(retries={"max_attempts": 2}), **_creds()
        )
        base_environment = {
            **LOCAL_AWS_ENVIRONMENT,
            "AWS_ENDPOINT_URL": aws_endpoint_url,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            # Development only: the settings page also takes a token from its URL fragment (`rostersync
            # admin token --console-url`); a deployed stack's page signs in only through its IdP.
            "ROSTERSYNC_DEVELOPMENT_TOKENS": "true",
        }
        for logical_id, spec in model.functions.items():
            concurrency = max(
                [
                    trigger.max_concurrency or DEFAULT_CONCURRENCY
                    for trigger in model.queue_triggers
                    if trigger.function == logical_id
                ]
                or [DEFAULT_CONCURRENCY]
            )
            self._pools[logical_id] = FunctionPool(
                spec, base_environment, self.log_dir, spec.max_concurrency or concurrency
            )
        self._serve(ApiGateway(model.routes, self.invoke, authorize), api_port)
        self._timers = ScheduleTimers(model.schedules, self.invoke)
        self._timers.start()
        for trigger in model.queue_triggers:
            queue = model.queues[trigger.queue]
            poller = QueuePoller(
                trigger,
                queue_url=queue.url,
                queue_name=queue.name,
                sqs=sqs,
                invoke=self.invoke,
                concurrency=trigger.max_concurrency or DEFAULT_CONCURRENCY,
                retry_delay_seconds=self._retry_delay,
            )
            poller.start()
            self._pollers.append(poller)
        dynamodb = boto3.client("dynamodb", endpoint_url=aws_endpoint_url, **_creds())
        streams = boto3.client("dynamodbstreams", endpoint_url=aws_endpoint_url, **_creds())
        for stream_trigger in model.stream_triggers if self._stream_sources else []:
            table_name = model.tables[stream_trigger.table].name
            on_failure = stream_trigger.on_failure_queue
            stream_poller = StreamPoller(
                stream_trigger,
                stream_arn=dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"],
                streams=streams,
                sqs=sqs,
                on_failure_queue_url=model.queues[on_failure].url if on_failure else None,
                invoke=self.invoke,
                retry_delay_seconds=self._retry_delay if self._retry_delay is not None else 1.0,
            )
            stream_poller.start()
            self._pollers.append(stream_poller)

    def _start_moto(self) -> str:
        port = self._aws_port or free_port()
        _refuse_taken_port(port, "AWS (moto)")
        self._spawn(
            "moto", [sys.executable, "-m", "rostersync_local.moto_server", "-H", "127.0.0.1", "-p", str(port)]
        )
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(f"{url}/moto-api/")
        return url

    def _start_canvas_simulator(self) -> str:
        if self._canvas_port:
            _refuse_taken_port(self._canvas_port, "the Canvas simulator")
        process = self._spawn(
            "canvas-sim",
            [
                sys.executable,
                "-m",
                "rostersync_local.canvas_sim",
                "--host",
                "127.0.0.1",
                "--port",
                str(self._canvas_port),
                "--seed",
                str(self._seed),
                "--courses",
                str(self._courses),
                "--canvas-cost",
                self._canvas_cost,
            ],
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Canvas simulator did not start; see {self.log_dir / 'canvas-sim.log'}")
        return str(json.loads(line)["canvas_url"])

    def _spawn(self, name: str, command: list[str], stdout: int | None = None) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            command,
            stdout=stdout if stdout is not None else log,
            stderr=log,
            env={**os.environ, **LOCAL_AWS_ENVIRONMENT},
        )
        self._children.append(process)
        return process

    def _serve(self, app: Any, port: int) -> str:
        server = make_server("127.0.0.1", port, app, threaded=True, request_handler=PathOnlyAccessLog)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    # -- running -------------------------------------------------------------------------------
    def invoke(self, function: str, event: Any) -> Invocation:
        return self._pools[function].invoke(event)

    def _control_app(self, model: StackModel) -> Any:
        def app(environ: dict[str, Any], start_response: Any) -> Any:
            request = Request(environ)
            parts = request.path.strip("/").split("/")
            body: Any
            if request.method == "POST" and parts == ["tokens"]:
                # Development tokens (`rostersync admin token`): an access token of the console's client
                # for a subject, without the sign-in (the CLI records the subject's memberships).
                wanted = request.get_json(silent=True) or {}
                if not wanted.get("subject"):
                    body, status = {"error": "give a subject"}, 400
                else:
                    token = self.identity.access_token(str(wanted["subject"]), self.console_client_id)
                    body, status = {"token": token}, 200
            elif request.method == "POST" and parts == ["client-tokens"]:
                # A machine client's token without its secret (tests, the bench): as the grant would issue.
                wanted = request.get_json(silent=True) or {}
                if not wanted.get("client_id"):
                    body, status = {"error": "give a client_id"}, 400
                else:
                    token = self.identity.machine_token(
                        str(wanted["client_id"]), str(wanted.get("scope", "rosters/read"))
                    )
                    body, status = {"token": token}, 200
            elif request.method == "GET" and parts == ["status"]:
                body = {
                    logical_id: {
                        "invocations": pool.stats.invocations,
                        "errors": pool.stats.errors,
                        "cold_starts": pool.stats.cold_starts,
                        "hosts": pool.stats.hosts,
                        "busy": pool.stats.busy,
                    }
                    for logical_id, pool in self._pools.items()
                }
                status = 200
            elif (
                request.method == "POST"
                and len(parts) == 3
                and parts[0] == "schedules"
                and parts[2] == "fire"
            ):
                if parts[1] not in model.schedules or self._timers is None:
                    body, status = {"error": f"no schedule {parts[1]}"}, 404
                else:
                    invocation = self._timers.fire(parts[1])
                    body = {"result": invocation.payload, "error": invocation.error}
                    status = 200 if invocation.error is None else 502
            else:
                body, status = {"error": "not found"}, 404
            return Response(json.dumps(body), status=status, content_type="application/json")(
                environ, start_response
            )

        return app

    # -- stop ----------------------------------------------------------------------------------
    def stop(self) -> None:
        if self._timers:
            self._timers.stop()
        for poller in self._pollers:
            poller.stop()
        for server in self._servers:
            server.shutdown()
        for pool in self._pools.values():
            pool.close()
        for process in self._children:
            process.terminate()
        for process in self._children:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self._logs:
            log.close()
        (self.state_dir / "stack.json").unlink(missing_ok=True)


class _LateBoundApp:
    """A WSGI app whose handler is set once the server's own URL has been used to configure it."""

    def __init__(self) -> None:
        self.target: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.target is None:
            return Response('{"error": "starting"}', status=503)(environ, start_response)
        return self.target(environ, start_response)


@dataclass(frozen=True)
class MadeUserPool:
    physical_ids: dict[str, str]  # logical id -> moto's id, for the pool and its app clients
    clients: dict[str, RegisteredClient]  # by client id
    directory: UserDirectory


def create_user_pool(pool: UserPoolSpec, endpoint: str, console_url: str) -> MadeUserPool:
    """The template's user pool, app clients, groups and resource servers, in moto. The clients' callback
    and logout URLs are the local console's (the template names the deployed API's)."""
    cognito = boto3.client("cognito-idp", endpoint_url=endpoint, **_creds())
    properties = pool.properties
    pool_id = cognito.create_user_pool(
        PoolName=str(properties.get("UserPoolName", pool.logical_id)),
        UsernameAttributes=properties.get("UsernameAttributes", []),
        AutoVerifiedAttributes=properties.get("AutoVerifiedAttributes", []),
    )["UserPool"]["Id"]
    physical_ids = {pool.logical_id: pool_id}
    clients: dict[str, RegisteredClient] = {}
    for logical_id, client in pool.clients.items():
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName=str(client["ClientName"]),
            GenerateSecret=bool(client.get("GenerateSecret", False)),
            CallbackURLs=[console_url],
            LogoutURLs=[console_url],
            AllowedOAuthFlows=client.get("AllowedOAuthFlows", []),
            AllowedOAuthScopes=client.get("AllowedOAuthScopes", []),
            AllowedOAuthFlowsUserPoolClient=bool(client.get("AllowedOAuthFlowsUserPoolClient")),
        )["UserPoolClient"]["ClientId"]
        physical_ids[logical_id] = client_id
        clients[client_id] = RegisteredClient(client_id, frozenset([console_url]), frozenset([console_url]))
    for group in pool.groups.values():
        cognito.create_group(UserPoolId=pool_id, GroupName=str(group["GroupName"]))
    for server in pool.resource_servers.values():
        cognito.create_resource_server(
            UserPoolId=pool_id,
            Identifier=str(server["Identifier"]),
            Name=str(server["Name"]),
            Scopes=server.get("Scopes", []),
        )
    console_client = next(iter(clients), "")
    return MadeUserPool(physical_ids, clients, UserDirectory(cognito, pool_id, console_client))


def create_resources(model: StackModel, endpoint: str) -> None:
    """The template's tables and queues (with their redrive policies), created in moto."""
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, **_creds())
    sqs = boto3.client("sqs", endpoint_url=endpoint, **_creds())
    for table in model.tables.values():
        properties = table.properties
        arguments: dict[str, Any] = {
            "TableName": table.name,
            "KeySchema": properties["KeySchema"],
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "BillingMode": properties.get("BillingMode", "PROVISIONED"),
        }
        if "GlobalSecondaryIndexes" in properties:
            arguments["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
        if "StreamSpecification" in properties:
            arguments["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
        dynamodb.create_table(**arguments)
        ttl = properties.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=table.name, TimeToLiveSpecification=ttl)
    # Dead-letter queues first: a redrive policy names its target.
    for queue in sorted(model.queues.values(), key=lambda queue: "RedrivePolicy" in queue.attributes):
        attributes = {
            name: json.dumps(value)
            if isinstance(value, dict)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
            for name, value in queue.attributes.items()
            if name
            in {
                "VisibilityTimeout",
                "MessageRetentionPeriod",
                "RedrivePolicy",
                "DelaySeconds",
                "ReceiveMessageWaitTimeSeconds",
                "MaximumMessageSize",
            }
        }
        sqs.create_queue(QueueName=queue.name, Attributes=attributes)
    # Buses and rules: moto's EventBridge delivers to the rules' SQS targets itself.
    events = boto3.client("events", endpoint_url=endpoint, **_creds())
    for bus in model.event_buses:
        events.create_event_bus(Name=bus)
    for rule in model.event_rules:
        events.put_rule(Name=rule.name, EventBusName=rule.bus, EventPattern=json.dumps(rule.pattern))
        events.put_targets(
            Rule=rule.name,
            EventBusName=rule.bus,
            Targets=[{"Id": id_, "Arn": arn} for id_, arn in rule.targets],
        )


def _refuse_taken_port(port: int, what: str) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise RuntimeError(f"{what} cannot listen on port {port}: {error.strerror}") from None


def _creds() -> dict[str, str]:
    return {
        "region_name": REGION,
        "aws_access_key_id": LOCAL_AWS_ENVIRONMENT["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": LOCAL_AWS_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
    }


def _parameter_override(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not name or not equals:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Run the rostersync stack locally (moto + Canvas simulator)."
    )
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--no-canvas-sim", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--courses", type=int, default=60)
    parser.add_argument(
        "--canvas-cost",
        choices=COST_MODELS,
        default="documented",
        help="the simulator's request cost: Canvas's documented server time, or the dearer 'stress' profile",
    )
    parser.add_argument("--api-port", type=int, default=0)
    parser.add_argument("--aws-port", type=int, default=0, help="moto's port (0: any free one)")
    parser.add_argument("--canvas-port", type=int, default=0, help="the Canvas simulator's (0: any free one)")
    parser.add_argument(
        "--no-functions",
        action="store_true",
        help="AWS and Canvas only: the template's functions run elsewhere (sam local)",
    )
    parser.add_argument(
        "--no-stream-sources",
        action="store_true",
        help="leave the table's stream unread (the roster event bus gets nothing): for test stacks whose "
        "tests never read the bus, which then do not pay for publishing every change",
    )
    parser.add_argument("--retry-delay-seconds", type=int, default=None)
    parser.add_argument(
        "--parameter-override",
        action="append",
        default=[],
        type=_parameter_override,
        metavar="NAME=VALUE",
        help="a template parameter, as sam deploy's --parameter-overrides (repeatable)",
    )
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stack = LocalStack(
        arguments.state_dir,
        canvas_sim=not arguments.no_canvas_sim,
        seed=arguments.seed,
        courses=arguments.courses,
        canvas_cost=arguments.canvas_cost,
        api_port=arguments.api_port,
        aws_port=arguments.aws_port,
        canvas_port=arguments.canvas_port,
        functions=not arguments.no_functions,
        stream_sources=not arguments.no_stream_sources,
        retry_delay_seconds=arguments.retry_delay_seconds,
        parameter_overrides=dict(arguments.parameter_override),
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        stack.start()
        logger.info("local stack ready: %s", json.dumps(stack.endpoints))
        stopping.wait()
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
