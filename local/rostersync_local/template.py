"""template.yaml, read the way CloudFormation would: translated by samtranslator, intrinsics resolved.

The local runner wires only what this model holds, so the template stays the single source of truth.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

from rostersync_local.control import LOCAL_REGION

REGION = LOCAL_REGION
ACCOUNT_ID = "123456789012"
PSEUDO_PARAMETERS = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}
_FUNCTION_ARN_IN_URI = re.compile(r"\$\{(\w+)\.Arn\}")


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, str]
    max_concurrency: int | None


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str
    url: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class JwtAuthorizerSpec:
    issuer: str
    audience: tuple[str, ...]  # as the template declares it (the CLI rewrites the deployed one's)
    name: str = ""  # the authorizer's name in the HTTP API


@dataclass(frozen=True)
class RouteSpec:
    method: str  # upper case, or ANY
    path: str  # OpenAPI style: /tenants/{tenant_id}
    function: str
    authorizer: JwtAuthorizerSpec | None = None
    scopes: tuple[str, ...] = ()  # AuthorizationScopes: the token must carry one of them (else 403)


@dataclass(frozen=True)
class QueueTriggerSpec:
    logical_id: str
    queue: str
    function: str
    batch_size: int
    report_batch_item_failures: bool
    max_concurrency: int | None


@dataclass(frozen=True)
class StreamTriggerSpec:
    """A DynamoDB stream event source (Lambda's poller: filter, batch, retries, on-failure queue)."""

    logical_id: str
    table: str
    function: str
    batch_size: int
    starting_position: str
    report_batch_item_failures: bool
    maximum_retry_attempts: int
    filter_patterns: tuple[dict[str, Any], ...]
    on_failure_queue: str | None


@dataclass(frozen=True)
class EventRuleSpec:
    """An EventBridge rule on a bus and its targets' ARNs (moto delivers to them itself)."""

    logical_id: str
    name: str
    bus: str
    pattern: dict[str, Any]
    targets: tuple[tuple[str, str], ...]  # (id, arn)


@dataclass(frozen=True)
class ScheduleSpec:
    logical_id: str
    function: str
    expression: str
    timezone: str | None
    input: str | None
    enabled: bool


@dataclass(frozen=True)
class UserPoolSpec:
    """A Cognito user pool, with its app clients', groups' and resource servers' resolved properties (by
    logical id)."""

    logical_id: str
    properties: dict[str, Any]
    clients: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]]
    resource_servers: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class StackModel:
    stack_name: str
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    queues: dict[str, QueueSpec] = field(default_factory=dict)
    tables: dict[str, TableSpec] = field(default_factory=dict)
    routes: list[RouteSpec] = field(default_factory=list)
    queue_triggers: list[QueueTriggerSpec] = field(default_factory=list)
    stream_triggers: list[StreamTriggerSpec] = field(default_factory=list)
    event_buses: list[str] = field(default_factory=list)
    event_rules: list[EventRuleSpec] = field(default_factory=list)
    schedules: dict[str, ScheduleSpec] = field(default_factory=dict)
    user_pools: dict[str, UserPoolSpec] = field(default_factory=dict)
    http_api: str | None = None  # the HTTP API's logical id
    outputs: dict[str, Any] = field(default_factory=dict)


class Resolver:
    """Resolves Ref, Fn::GetAtt, Fn::Sub and Fn::Join against local physical ids."""

    def __init__(
        self,
        stack_name: str,
        parameters: dict[str, str],
        resources: dict[str, Any],
        aws_endpoint_url: str | None,
        *,
        conditions: dict[str, Any] | None = None,
        physical_ids: dict[str, str] | None = None,
        attributes: dict[tuple[str, str], str] | None = None,
    ) -> None:
        self.stack_name = stack_name
        self.parameters = parameters
        self.resources = resources
        self.conditions = conditions or {}
        # What the local stack made for a resource whose id AWS would choose (a user pool's), and the
        # attributes it stands in for (the pool's issuer URL is the local identity provider's).
        self.physical_ids = physical_ids or {}
        self.attributes = attributes or {}
        # moto names a queue's URL after the endpoint it was reached at: <endpoint>/<account>/<name>
        self.queue_url_base = aws_endpoint_url or f"https://sqs.{REGION}.amazonaws.com"

    def physical_name(self, logical_id: str) -> str:
        properties = self.resources.get(logical_id, {}).get("Properties", {})
        explicit = properties.get("QueueName") or properties.get("TableName") or properties.get("Name")
        return str(self.resolve(explicit)) if explicit is not None else f"{self.stack_name}-{logical_id}"

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.conditions[name]))

    def ref(self, name: str) -> Any:
        if name in self.physical_ids:
            return self.physical_ids[name]
        if name == "AWS::StackName":
            return self.stack_name
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.parameters:
            return self.parameters[name]
        resource_type = self.resources.get(name, {}).get("Type", "")
        if resource_type == "AWS::SQS::Queue":
            return f"{self.queue_url_base}/{ACCOUNT_ID}/{self.physical_name(name)}"
        return self.physical_name(name)

    def get_att(self, name: str, attribute: str) -> Any:
        resource_type = self.resources.get(name, {}).get("Type", "")
        service = {
            "AWS::SQS::Queue": "sqs",
            "AWS::Lambda::Function": "lambda",
            "AWS::DynamoDB::Table": "dynamodb",
        }
        if (name, attribute) in self.attributes:
            return self.attributes[(name, attribute)]
        if attribute == "QueueName":
            return self.physical_name(name)
        if attribute == "QueueUrl":
            return self.ref(name)
        if attribute == "StreamArn":
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{self.physical_name(name)}/stream/local"
        if attribute == "Arn":
            kind = service.get(resource_type, "local")
            prefix = {"lambda": "function:", "dynamodb": "table/"}.get(kind, "")
            return f"arn:aws:{kind}:{REGION}:{ACCOUNT_ID}:{prefix}{self.physical_name(name)}"
        return f"{self.physical_name(name)}.{attribute}"

    def sub(self, template: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                resource, attribute = name.split(".", 1)
                return str(self.get_att(resource, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([\w:.]+)\}", replace, template)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            # A list item that resolves to AWS::NoValue is left out, as CloudFormation does.
            return [resolved for item in value if (resolved := self.resolve(item)) is not None]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(argument[0])
            if key == "Condition":
                return self.condition(argument)
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                resource, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(resource, attribute)
            if key == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                return self.sub(text, variables)
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(item) for item in self.resolve(items))
        return {key: self.resolve(item) for key, item in value.items()}


def _is_stream(reference: Any) -> bool:
    """Whether an event source ARN names a table's stream (GetAtt Table.StreamArn)."""
    argument = reference.get("Fn::GetAtt") if isinstance(reference, dict) else None
    if argument is None:
        return False
    attribute = argument[1] if isinstance(argument, list) else argument.split(".", 1)[1]
    return bool(attribute == "StreamArn")


def _logical_id(reference: Any) -> str:
    """The logical id named by a Ref or GetAtt."""
    if isinstance(reference, dict):
        if "Ref" in reference:
            return str(reference["Ref"])
        if "Fn::GetAtt" in reference:
            argument = reference["Fn::GetAtt"]
            return str(argument[0] if isinstance(argument, list) else argument.split(".")[0])
    raise ValueError(f"cannot tell which resource {reference!r} names")


def translate(template_path: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """CloudFormation for the SAM template, and each function's code folder."""
    sam = yaml_parse(template_path.read_text())
    code_dirs: dict[str, Path] = {}
    for logical_id, resource in sam.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                code_dirs[logical_id] = (template_path.parent / properties[key]).resolve()
                properties[key] = f"s3://local-artifacts/{logical_id}"
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    # The translator's own metrics go nowhere (it would warn of them, unpublished, at exit).
    metrics = Metrics(metrics_publisher=DummyMetricsPublisher())
    translator = Translator(None, Parser(), metrics=metrics)
    cfn = translator.translate(sam, parameter_values={}, get_managed_policy_map=lambda: {})
    metrics.publish()
    return cfn, code_dirs


def load_stack(
    template_path: Path,
    stack_name: str,
    parameter_overrides: dict[str, str] | None = None,
    aws_endpoint_url: str | None = None,
    *,
    physical_ids: dict[str, str] | None = None,
    attributes: dict[tuple[str, str], str] | None = None,
) -> StackModel:
    """The stack's model. `physical_ids` and `attributes`: what the local stack made for resources whose
    ids AWS would choose (a second load, once they exist; see runner.py)."""
    cfn, code_dirs = translate(template_path)
    parameters = {name: str(spec.get("Default", "")) for name, spec in cfn.get("Parameters", {}).items()}
    if aws_endpoint_url is not None and "AwsEndpointUrl" in parameters:
        # The functions reach the AWS the stack was made in (the template passes it as AWS_ENDPOINT_URL).
        parameters["AwsEndpointUrl"] = aws_endpoint_url
    parameters.update(parameter_overrides or {})
    resolver = Resolver(
        stack_name,
        parameters,
        cfn["Resources"],
        aws_endpoint_url,
        conditions=cfn.get("Conditions"),
        physical_ids=physical_ids,
        attributes=attributes,
    )
    # Resources whose condition is false are not created.
    resources: dict[str, Any] = {
        logical_id: resource
        for logical_id, resource in cfn["Resources"].items()
        if "Condition" not in resource or resolver.condition(resource["Condition"])
    }
    resolver.resources = resources
    model = StackModel(stack_name=stack_name)
    _read_user_pools(model, resources, resolver)
    _read_standalone_routes(model, resources, resolver)
    for logical_id, resource in resources.items():
        kind, properties = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::DynamoDB::Table":
            model.tables[logical_id] = TableSpec(
                logical_id, resolver.physical_name(logical_id), resolver.resolve(properties)
            )
        elif kind == "AWS::SQS::Queue":
            model.queues[logical_id] = QueueSpec(
                logical_id,
                resolver.physical_name(logical_id),
                resolver.ref(logical_id),
                resolver.resolve(properties),
            )
    for logical_id, resource in resources.items():
        kind, properties = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::Lambda::Function":
            code_key = properties["Code"]["S3Key"]
            model.functions[logical_id] = FunctionSpec(
                logical_id=logical_id,
                name=resolver.physical_name(logical_id),
                code_dir=code_dirs[code_key],
                handler=properties["Handler"],
                timeout_seconds=int(properties.get("Timeout", 3)),
                memory_mb=int(properties.get("MemorySize", 128)),
                environment={
                    name: str(value)
                    for name, value in resolver.resolve(
                        properties.get("Environment", {}).get("Variables", {})
                    ).items()
                    if value is not None
                },
                max_concurrency=properties.get("ReservedConcurrentExecutions"),
            )
        elif kind == "AWS::Lambda::EventSourceMapping" and _is_stream(properties["EventSourceArn"]):
            on_failure = properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            model.stream_triggers.append(
                StreamTriggerSpec(
                    logical_id=logical_id,
                    table=_logical_id(properties["EventSourceArn"]),
                    function=_logical_id(properties["FunctionName"]),
                    batch_size=int(properties.get("BatchSize", 100)),
                    starting_position=str(properties.get("StartingPosition", "LATEST")),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in properties.get("FunctionResponseTypes", []),
                    maximum_retry_attempts=int(properties.get("MaximumRetryAttempts", -1)),
                    filter_patterns=tuple(
                        json.loads(entry["Pattern"])
                        for entry in properties.get("FilterCriteria", {}).get("Filters", [])
                    ),
                    on_failure_queue=_logical_id(on_failure) if on_failure else None,
                )
            )
        elif kind == "AWS::Events::EventBus":
            model.event_buses.append(resolver.physical_name(logical_id))
        elif kind == "AWS::Events::Rule":
            model.event_rules.append(
                EventRuleSpec(
                    logical_id=logical_id,
                    name=str(resolver.resolve(properties.get("Name")) or f"{stack_name}-{logical_id}"),
                    bus=str(resolver.resolve(properties.get("EventBusName", "default"))),
                    pattern=resolver.resolve(properties["EventPattern"]),
                    targets=tuple(
                        (str(target["Id"]), str(resolver.resolve(target["Arn"])))
                        for target in properties.get("Targets", [])
                    ),
                )
            )
        elif kind == "AWS::Lambda::EventSourceMapping":
            model.queue_triggers.append(
                QueueTriggerSpec(
                    logical_id=logical_id,
                    queue=_logical_id(properties["EventSourceArn"]),
                    function=_logical_id(properties["FunctionName"]),
                    batch_size=int(properties.get("BatchSize", 10)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in properties.get("FunctionResponseTypes", []),
                    max_concurrency=properties.get("ScalingConfig", {}).get("MaximumConcurrency"),
                )
            )
        elif kind == "AWS::Scheduler::Schedule":
            target = properties["Target"]
            model.schedules[logical_id] = ScheduleSpec(
                logical_id=logical_id,
                function=_logical_id(target["Arn"]),
                expression=str(resolver.resolve(properties["ScheduleExpression"])),
                timezone=resolver.resolve(properties.get("ScheduleExpressionTimezone")),
                input=target.get("Input"),
                enabled=properties.get("State", "ENABLED") == "ENABLED",
            )
        elif kind == "AWS::ApiGatewayV2::Api":
            model.http_api = logical_id
            schemes = properties.get("Body", {}).get("components", {}).get("securitySchemes", {})
            authorizers = {
                name: JwtAuthorizerSpec(
                    issuer=str(resolver.resolve(config["jwtConfiguration"]["issuer"])),
                    audience=tuple(
                        str(value) for value in resolver.resolve(config["jwtConfiguration"]["audience"])
                    ),
                    name=name,
                )
                for name, scheme in schemes.items()
                if (config := scheme.get("x-amazon-apigateway-authorizer", {})).get("type") == "jwt"
            }
            for path, methods in properties.get("Body", {}).get("paths", {}).items():
                for method, operation in methods.items():
                    uri = operation.get("x-amazon-apigateway-integration", {}).get("uri", {})
                    text = uri.get("Fn::Sub", "") if isinstance(uri, dict) else str(uri)
                    text = text if isinstance(text, str) else text[0]
                    found = _FUNCTION_ARN_IN_URI.search(text)
                    if found:
                        verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                        required = [
                            (name, tuple(scopes))
                            for entry in operation.get("security", [])
                            for name, scopes in entry.items()
                        ]
                        authorizer = authorizers[required[0][0]] if required else None
                        scopes = required[0][1] if required else ()
                        model.routes.append(RouteSpec(verb, path, found.group(1), authorizer, scopes))
    model.outputs = {
        name: resolver.resolve(spec.get("Value"))
        for name, spec in cfn.get("Outputs", {}).items()
        if "Condition" not in spec or resolver.condition(spec["Condition"])
    }
    return model


def _read_user_pools(model: StackModel, resources: dict[str, Any], resolver: Resolver) -> None:
    def owned_by(kind: str, pool: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resolver.resolve(resource.get("Properties", {}))
            for logical_id, resource in resources.items()
            if resource["Type"] == kind
            and _logical_id(resource.get("Properties", {}).get("UserPoolId")) == pool
        }

    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Cognito::UserPool":
            model.user_pools[logical_id] = UserPoolSpec(
                logical_id,
                resolver.resolve(resource.get("Properties", {})),
                owned_by("AWS::Cognito::UserPoolClient", logical_id),
                owned_by("AWS::Cognito::UserPoolGroup", logical_id),
                owned_by("AWS::Cognito::UserPoolResourceServer", logical_id),
            )


def _read_standalone_routes(model: StackModel, resources: dict[str, Any], resolver: Resolver) -> None:
    """Routes declared as AWS::ApiGatewayV2::Route resources (beside the HttpApi's SAM body)."""
    for resource in resources.values():
        if resource["Type"] != "AWS::ApiGatewayV2::Route":
            continue
        properties = resource["Properties"]
        method, _, path = str(properties["RouteKey"]).partition(" ")
        target = properties["Target"]  # !Sub integrations/${<the integration's logical id>}
        found = re.fullmatch(r"integrations/\$\{(\w+)\}", str(target.get("Fn::Sub", "")))
        if found is None:
            raise ValueError(f"route {properties['RouteKey']}: cannot tell its integration from {target!r}")
        integration = resources[found.group(1)]["Properties"]
        authorizer = None
        if properties.get("AuthorizationType") == "JWT":
            jwt = resolver.resolve(resources[_logical_id(properties["AuthorizerId"])]["Properties"])
            configuration = jwt["JwtConfiguration"]
            authorizer = JwtAuthorizerSpec(
                str(configuration["Issuer"]),
                tuple(str(value) for value in configuration["Audience"]),
                str(jwt["Name"]),
            )
        function = _logical_id(integration["IntegrationUri"])
        model.routes.append(RouteSpec(method.upper(), path, function, authorizer))
