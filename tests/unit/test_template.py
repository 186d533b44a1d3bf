"""What cfn-lint does not check in template.yaml: event properties, queue timing, DLQs, code folders."""

import ast
import json
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = yaml_parse((ROOT / "template.yaml").read_text())
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
GLOBAL_FUNCTION: dict[str, Any] = TEMPLATE["Globals"]["Function"]
FUNCTIONS = {
    name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"
}
QUEUES = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::SQS::Queue"}
EVENT_KEYS = {
    "SQS": {
        "Queue",
        "BatchSize",
        "FunctionResponseTypes",
        "ScalingConfig",
        "MaximumBatchingWindowInSeconds",
        "Enabled",
    },
    "HttpApi": {"ApiId", "Path", "Method", "Auth", "TimeoutInMillis", "PayloadFormatVersion"},
    "ScheduleV2": {"ScheduleExpression", "ScheduleExpressionTimezone", "Input", "State", "Description"},
    "DynamoDB": {
        "Stream",
        "StartingPosition",
        "BatchSize",
        "MaximumRetryAttempts",
        "BisectBatchOnFunctionError",
        "FunctionResponseTypes",
        "DestinationConfig",
        "FilterCriteria",
    },
}


def _events(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (function, event["Properties"])
        for function, properties in FUNCTIONS.items()
        for event in properties.get("Events", {}).values()
        if event["Type"] == kind
    ]


def _parameter_default(value: Any) -> Any:
    if isinstance(value, dict) and "Ref" in value:
        return TEMPLATE["Parameters"][value["Ref"]]["Default"]
    return value


def test_every_function_and_the_layer_share_one_python_runtime() -> None:
    runtimes = {properties.get("Runtime", GLOBAL_FUNCTION["Runtime"]) for properties in FUNCTIONS.values()}
    layer_methods = {
        r["Metadata"]["BuildMethod"] for r in RESOURCES.values() if r["Type"].endswith("LayerVersion")
    }
    assert runtimes == layer_methods == {"python3.13"}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_handler_exists_where_the_template_says(function: str) -> None:
    properties = FUNCTIONS[function]
    module, handler = properties["Handler"].split(".")
    source = ROOT / properties["CodeUri"] / f"{module}.py"
    body = ast.parse(source.read_text()).body
    defined = {node.name for node in body if isinstance(node, ast.FunctionDef)}
    assigned = {  # `handler = sqs_batch_handler(...)`
        target.id for node in body if isinstance(node, ast.Assign) for target in node.targets
        if isinstance(target, ast.Name)
    }  # fmt: skip
    assert handler in defined | assigned


def test_event_properties_are_spelled_right() -> None:
    for kind, allowed in EVENT_KEYS.items():
        for function, properties in _events(kind):
            assert set(properties) <= allowed, f"{function}: unknown {kind} keys {set(properties) - allowed}"


def test_sqs_consumers_report_batch_item_failures() -> None:
    events = _events("SQS")
    assert events
    for function, properties in events:
        assert properties.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], function


def test_queue_visibility_is_at_least_six_times_the_consumer_timeout() -> None:
    for function, properties in _events("SQS"):
        queue = properties["Queue"]["Fn::GetAtt"][0]
        timeout = FUNCTIONS[function].get("Timeout", GLOBAL_FUNCTION["Timeout"])
        assert QUEUES[queue]["VisibilityTimeout"] >= 6 * timeout, f"{queue} vs {function}"


def _dead_letter_queues() -> set[str]:
    """Redrive targets, and where a stream event source sends what failed after its retries."""
    redrive = {
        properties["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for properties in QUEUES.values()
        if "RedrivePolicy" in properties
    }
    on_failure = {
        properties["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        for _, properties in _events("DynamoDB")
    }
    return redrive | on_failure


def test_every_work_queue_has_a_dead_letter_queue() -> None:
    dead_letter_queues = _dead_letter_queues()
    # A rule's target queue is the consumer's (the example consumer): it reads and redrives it itself.
    rule_targets = {
        target["Arn"]["Fn::GetAtt"][0]
        for resource in RESOURCES.values()
        if resource["Type"] == "AWS::Events::Rule"
        for target in resource["Properties"]["Targets"]
    }
    work_queues = set(QUEUES) - dead_letter_queues - rule_targets
    assert work_queues and rule_targets
    assert {
        queue for _, properties in _events("SQS") for queue in [properties["Queue"]["Fn::GetAtt"][0]]
    } <= (work_queues)
    for queue in work_queues:
        policy = QUEUES[queue].get("RedrivePolicy")
        assert policy, f"{queue} has no dead-letter queue"
        assert int(_parameter_default(policy["maxReceiveCount"])) >= 1


def test_schedule_input_is_what_the_scheduled_handlers_parse() -> None:
    scheduled = {
        Path(FUNCTIONS[function]["CodeUri"]).name: json.loads(properties["Input"])
        for function, properties in _events("ScheduleV2")
    }
    assert scheduled == {
        "sync_scheduler": {"trigger": "schedule"},
        "delivery_audience": {"trigger": "schedule"},
    }


def test_the_audience_repair_runs_every_few_minutes_on_this_api_with_only_what_it_needs() -> None:
    from rostersync.store.keys import TENANTS_INDEX
    from rostersync_local.schedules import rate_seconds
    from rostersync_local.template import load_stack

    function = FUNCTIONS["DeliveryAudienceFunction"]
    assert function["Environment"]["Variables"] == {
        "DELIVERY_API_ID": {"Ref": "HttpApi"},
        "CLIENT_JWT_AUDIENCE": {"Ref": "ClientJwtAudience"},
    }
    assert TEMPLATE["Parameters"]["DeliveryAudienceRepairMinutes"]["Default"] == 5
    # As deployed (and as the local stack's timers read it): every DeliveryAudienceRepairMinutes.
    model = load_stack(ROOT / "template.yaml", "t", {"DeliveryAudienceRepairMinutes": "7"})
    (schedule,) = [spec for spec in model.schedules.values() if spec.function == "DeliveryAudienceFunction"]
    assert rate_seconds(schedule.expression) == 7 * 60 and schedule.enabled
    # The registry's reads (the index it is listed from, a client's own item) and this API's authorizers.
    (policy,) = function["Policies"]
    grants = {statement["Action"]: statement["Resource"] for statement in policy["Statement"]}
    arn = "arn:${AWS::Partition}"
    assert grants == {
        "dynamodb:Query": {
            "Fn::Sub": f"{arn}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/${{RosterTable}}"
            f"/index/{TENANTS_INDEX}"
        },
        "dynamodb:GetItem": {"Fn::GetAtt": ["RosterTable", "Arn"]},
        "apigateway:GET": {"Fn::Sub": f"{arn}:apigateway:${{AWS::Region}}::/apis/${{HttpApi}}/authorizers"},
        "apigateway:PATCH": {
            "Fn::Sub": f"{arn}:apigateway:${{AWS::Region}}::/apis/${{HttpApi}}/authorizers/*"
        },
    }


def test_every_function_has_a_sample_event() -> None:
    samples = {path.name for path in (ROOT / "events").glob("*.json")}
    for properties in FUNCTIONS.values():
        folder = Path(properties["CodeUri"]).name
        assert any(sample.startswith(folder) for sample in samples), f"no events/{folder}*.json"


def test_every_dead_letter_queue_has_an_alarm_and_failures_alarm_on_the_emitted_metric() -> None:
    alarms = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {
        dimension["Value"]["Fn::GetAtt"][0]
        for alarm in alarms
        for dimension in alarm.get("Dimensions", [])
        if dimension["Name"] == "QueueName"
    }
    dead_letter_queues = _dead_letter_queues()
    assert dead_letter_queues and dead_letter_queues <= watched
    from rostersync.observability import OUTCOME_METRICS

    failure_metrics = {alarm["MetricName"] for alarm in alarms if alarm["Namespace"] == "rostersync"}
    assert failure_metrics and failure_metrics <= set(OUTCOME_METRICS.values())
    assert all(alarm.get("AlarmActions") for alarm in alarms)


def test_admin_routes_sit_behind_the_jwt_authorizer_and_public_ones_do_not() -> None:
    from rostersync_local.template import load_stack

    model = load_stack(ROOT / "template.yaml", "t")
    assert {route.path for route in model.routes if route.path.startswith("/admin/")}
    assert {route.path for route in model.routes if route.path.startswith("/v1/")} == {
        "/v1/{proxy+}",
        "/v1/openapi.json",
    }
    for route in model.routes:
        if route.path.startswith("/admin/"):
            assert route.authorizer is not None, f"{route.method} {route.path} is not signed-in only"
        elif route.path.startswith("/v1/") and route.path != "/v1/openapi.json":
            # The delivery API: machine clients' tokens, with the read scope (403 without it).
            assert route.authorizer is not None, f"{route.method} {route.path}"
            assert route.scopes == ("rosters/read",)
        else:
            assert route.authorizer is None, (
                f"{route.path}: OAuth, health, live events and /v1/openapi.json are public"
            )


def test_the_authorizer_trusts_the_stacks_user_pool_or_else_the_institutions_issuer() -> None:
    from rostersync.store.api_authorizer import DELIVERY_AUTHORIZER_NAME
    from rostersync.store.user_pool import DELIVERY_SCOPE
    from rostersync_local.template import StackModel, load_stack

    own = load_stack(
        ROOT / "template.yaml", "t", physical_ids={"AdminUserPoolClient": "console-client", "HttpApi": "api1"}
    )
    assert set(own.user_pools) == {"AdminUserPool"}
    pool = own.user_pools["AdminUserPool"]
    (client,) = pool.clients.values()
    assert client["AllowedOAuthFlows"] == ["code"] and client["GenerateSecret"] is False
    assert [group["GroupName"] for group in pool.groups.values()] == ["rostersync-operators"]
    # Machine clients are allowed the resource server's scope, which the /v1 routes require; the CLI finds
    # their authorizer by name in the HttpApiId output's API and keeps ClientJwtAudience in its audience.
    (server,) = pool.resource_servers.values()
    assert {f"{server['Identifier']}/{scope['ScopeName']}" for scope in server["Scopes"]} == {DELIVERY_SCOPE}
    scoped = [route for route in own.routes if route.scopes]
    assert scoped and {route.scopes for route in scoped} == {(DELIVERY_SCOPE,)}
    assert {route.authorizer.name for route in scoped if route.authorizer} == {DELIVERY_AUTHORIZER_NAME}
    assert own.outputs["HttpApiId"] == "api1" and own.outputs["ClientJwtAudience"] == "rostersync-api"

    def authorizers(model: StackModel, prefix: str) -> list[tuple[str, tuple[str, ...]]]:
        found = {
            route.authorizer for route in model.routes if route.authorizer and route.path.startswith(prefix)
        }
        return [(spec.issuer, spec.audience) for spec in found]

    assert authorizers(own, "/admin/") == [("t-AdminUserPool.ProviderURL", ("console-client",))]
    # The machine clients' tokens come from the same user pool (their client-credentials grant).
    assert authorizers(own, "/v1/") == [("t-AdminUserPool.ProviderURL", ("rostersync-api",))]
    institution = load_stack(
        ROOT / "template.yaml",
        "t",
        {
            "AdminOidcIssuer": "https://idp.example.edu",
            "AdminOidcAudience": "rostersync-page",
            "ClientJwtIssuer": "https://machines.example.edu",
        },
    )
    assert institution.user_pools == {} and "AdminUserPoolId" not in institution.outputs
    assert "HttpApiId" in institution.outputs  # `client add --client-id` rewrites its audience too
    assert authorizers(institution, "/admin/") == [("https://idp.example.edu", ("rostersync-page",))]
    assert authorizers(institution, "/v1/") == [("https://machines.example.edu", ("rostersync-api",))]
    variables = institution.functions["AdminApiFunction"].environment
    assert variables["ADMIN_SIGN_IN_ISSUER"] == "https://idp.example.edu"
    assert variables["ADMIN_SIGN_IN_CLIENT_ID"] == "rostersync-page"
    assert variables["ADMIN_USER_POOL_ID"] == ""


def test_every_setting_the_template_passes_is_one_the_functions_read() -> None:
    from rostersync.settings import environment_variables

    passed = set(GLOBAL_FUNCTION["Environment"]["Variables"]) | {
        name
        for properties in FUNCTIONS.values()
        for name in properties.get("Environment", {}).get("Variables", {})
    }
    read_by_libraries = {"AWS_ENDPOINT_URL"}  # boto3 reads it itself
    assert {name for name in passed if not name.startswith("POWERTOOLS_")} - read_by_libraries <= set(
        environment_variables()
    )


def test_powertools_tracer_is_on_exactly_where_lambda_traces() -> None:
    # Lambda's X-Ray mode and Powertools' Tracer follow one parameter: an untraced function must not pay
    # the X-Ray SDK's import at its cold start, a traced one must not lose its segments.
    parameter = TEMPLATE["Parameters"]["FunctionTracing"]
    assert set(parameter["AllowedValues"]) == {"Active", "PassThrough"}
    assert GLOBAL_FUNCTION["Tracing"] == {"Ref": "FunctionTracing"}
    assert TEMPLATE["Conditions"]["TraceFunctions"] == {"Fn::Equals": [{"Ref": "FunctionTracing"}, "Active"]}
    disabled = GLOBAL_FUNCTION["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"]
    assert disabled == {"Fn::If": ["TraceFunctions", "false", "true"]}
    for name, properties in FUNCTIONS.items():
        assert "Tracing" not in properties, name
        assert "POWERTOOLS_TRACE_DISABLED" not in properties.get("Environment", {}).get("Variables", {}), name


def test_signed_live_events_are_required_by_both_live_event_functions_and_in_prod() -> None:
    parameter = TEMPLATE["Parameters"]["RequireSignedLiveEvents"]
    assert parameter["Default"] == "false" and set(parameter["AllowedValues"]) == {"true", "false"}
    for function in ("LiveEventsIntakeFunction", "LiveEventsFunction"):
        variables = FUNCTIONS[function]["Environment"]["Variables"]
        assert variables["REQUIRE_SIGNED_LIVE_EVENTS"] == {"Ref": "RequireSignedLiveEvents"}, function
    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
    overrides = dict(
        item.split("=", 1)
        for item in shlex.split(samconfig["prod"]["deploy"]["parameters"]["parameter_overrides"])
    )
    assert overrides["RequireSignedLiveEvents"] == "true"


def test_every_queue_is_encrypted_at_rest() -> None:
    # checkov's CKV_AWS_27 knows KMS keys only, so .checkov.yaml skips it: this test stands in for it.
    for name, properties in QUEUES.items():
        assert properties.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in properties, name


def test_every_function_logs_to_a_group_with_a_retention_period() -> None:
    groups = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::Logs::LogGroup"}
    for function, properties in FUNCTIONS.items():
        group = properties.get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        assert group in groups, f"{function} logs to no group of the template"
        assert groups[group].get("RetentionInDays"), f"{group} keeps logs forever"


def _both_branches(policies: list[Any]) -> list[dict[str, Any]]:
    """The policies, with each conditional one (Fn::If) as both of its branches."""
    found = []
    for policy in policies:
        for branch in policy["Fn::If"][1:] if "Fn::If" in policy else [policy]:
            if isinstance(branch, dict) and "PolicyDocument" in branch:
                found.append(branch)
    return found


def test_no_inline_policy_grants_every_resource() -> None:
    from rostersync_local.template import translate

    cfn, _ = translate(ROOT / "template.yaml")
    statements = [
        (name, statement)
        for name, resource in cfn["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
        for policy in _both_branches(resource["Properties"].get("Policies", []))
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    assert statements
    for role, statement in statements:
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        assert "*" not in resources, f"{role}: {statement['Action']} on every resource"


def test_every_function_reaches_aws_where_the_endpoint_parameter_says() -> None:
    # boto3 reads AWS_ENDPOINT_URL itself; `sam local --env-vars` can only override declared variables.
    assert GLOBAL_FUNCTION["Environment"]["Variables"]["AWS_ENDPOINT_URL"] == {"Ref": "AwsEndpointUrl"}
    assert TEMPLATE["Parameters"]["AwsEndpointUrl"]["Default"] == ""
