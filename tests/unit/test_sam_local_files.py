"""The files `sam local` reads: events/env.local.json made from the template, and the admin samples made
by `rostersync admin token --event` (claims generated, not hand-written)."""

import json
import tomllib
from pathlib import Path

import pytest

from rostersync_cli.local_cli import admin_event
from rostersync_cli.main import build_parser
from rostersync_local.issuer import OPERATOR_SUBJECT, development_subject
from rostersync_local.sam_local import (
    CONTAINER_AWS_ENDPOINT,
    ENV_VARS_FILE,
    SamLocalError,
    check_env_vars,
    declared_environments,
    env_vars_document,
)

EVENTS = ENV_VARS_FILE.parent
# Each API sample and the `rostersync admin token --event` arguments that make it.
GENERATED = {
    "admin_api_health.json": ["GET /health"],
    "admin_api_console.json": ["GET /console"],
    "admin_api_oauth_start.json": ["GET /oauth/start?state=tabc123def456.example-start"],
    "admin_api_tenant.json": ["GET /admin/tenant"],
    "admin_api_runs.json": ["GET /admin/runs"],
    "admin_api_sync.json": ["POST /admin/sync", "--body", '{"course_ids": [101]}'],
    "admin_api_self_test.json": ["POST /admin/self-test", "--body", "{}"],
    "admin_api_add_tenant.json": [
        "POST /admin/tenants",
        "--body",
        '{"name": "Second University"}',
        "--operator",
    ],
    "admin_api_grades.json": [
        "POST /admin/grades",
        "--body",
        '{"course_id": 101, "assignment": {"external_id": "sample-quiz-2", "name": "Sample quiz 2", '
        '"points_possible": 5}, "grades": [{"student": "84550146", "score": 4, "comment": "Well done"}]}',
    ],
    "oauth_callback.json": ["GET /oauth/callback?code=example-code&state=tabc123def456.example-state"],
    "oauth_callback_access_denied.json": [
        "GET /oauth/callback?error=access_denied&state=tabc123def456.example-declined"
    ],
}


def test_the_env_vars_file_is_what_the_template_makes() -> None:
    assert json.loads(ENV_VARS_FILE.read_text()) == env_vars_document(), (
        "regenerate: python -m rostersync_local.sam_local env-vars > events/env.local.json"
    )


def test_the_env_vars_file_names_every_resource_of_every_function() -> None:
    # sam local resolves `!Ref RosterTable` to "RosterTable": each such variable must be overridden.
    document = json.loads(ENV_VARS_FILE.read_text())
    for function, variables in declared_environments().items():
        wrong = {name for name, variable in variables.items() if variable.names_a_resource}
        assert wrong and wrong <= set(document[function]), function
    assert document["Parameters"]["AWS_ENDPOINT_URL"] == CONTAINER_AWS_ENDPOINT


def test_a_block_for_a_function_the_template_lacks_is_refused_by_name() -> None:
    document = json.loads(ENV_VARS_FILE.read_text())
    with pytest.raises(SamLocalError, match="AdminFunction, which the template does not have"):
        check_env_vars({**document, "AdminFunction": {"ROSTER_TABLE_NAME": "t"}})
    with pytest.raises(SamLocalError, match="SyncPlannerFunction sets ROSTER_TABLE, which the template"):
        check_env_vars({**document, "SyncPlannerFunction": {"ROSTER_TABLE": "t"}})
    check_env_vars(document)


@pytest.mark.parametrize("sample", sorted(GENERATED))
def test_api_samples_are_what_admin_token_event_generates(sample: str) -> None:
    arguments = build_parser().parse_args(["admin", "token", "--event", *GENERATED[sample]])
    assert admin_event(arguments) == json.loads((EVENTS / sample).read_text())


def test_admin_samples_carry_the_authorizer_claims_and_public_ones_none() -> None:
    for sample in GENERATED:
        event = json.loads(Path(EVENTS / sample).read_text())
        claims = event["requestContext"].get("authorizer", {}).get("jwt", {}).get("claims")
        if event["rawPath"] == "/admin/tenants":
            assert claims and claims["sub"] == OPERATOR_SUBJECT, sample
        elif event["rawPath"].startswith("/admin/"):
            # Which tenant is rostersync's data (`local seed` makes this subject the demo tenant's admin).
            assert claims and claims["sub"] == development_subject("tabc123def456"), sample
        else:
            assert claims is None, sample


def test_an_event_for_a_route_the_template_lacks_is_refused() -> None:
    arguments = build_parser().parse_args(["admin", "token", "--event", "DELETE /admin/tenant"])
    with pytest.raises(RuntimeError, match="no route for DELETE /admin/tenant"):
        admin_event(arguments)


def test_samconfig_points_sam_local_at_the_env_vars_file_and_names_real_environments() -> None:
    config = tomllib.loads((ENV_VARS_FILE.parents[1] / "samconfig.toml").read_text())
    for command in ("local_invoke", "local_start_api"):
        parameters = config["default"][command]["parameters"]
        assert (ENV_VARS_FILE.parents[1] / parameters["env_vars"]) == ENV_VARS_FILE, command
    for environment in ("dev", "prod"):
        assert config[environment]["global"]["parameters"]["stack_name"] == f"rostersync-{environment}"
        assert config[environment]["global"]["parameters"]["region"]
        overrides = config[environment]["deploy"]["parameters"]["parameter_overrides"]
        assert f"Environment={environment}" in overrides
        template = (ENV_VARS_FILE.parents[1] / "template.yaml").read_text()
        for name in (pair.partition("=")[0] for pair in overrides.split()):
            assert f"\n  {name}:\n" in template, f"{environment} overrides {name}, not a template parameter"
