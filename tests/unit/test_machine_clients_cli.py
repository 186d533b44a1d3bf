"""`rostersync --stack S client add|remove|sync-audience` on a deployed stack, its AWS in moto: the app
client in the stack's user pool, the registry in its table, and the /v1 authorizer's audience (Cognito's
client-credentials tokens carry `client_id`, no `aud`, which API Gateway checks against that list); and
the scheduled repair of that audience (DeliveryAudienceFunction's `repair_audience`) on the same stack."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.apigatewayv2.responses import ApiGatewayV2Response

from rostersync.machine_clients import (
    MAX_AUDIENCE,
    AudienceRepair,
    DeliveryAudience,
    configured_delivery_audience,
    repair_audience,
)
from rostersync.models import ApiClient
from rostersync.settings import Settings
from rostersync.store.api_authorizer import ApiAuthorizer
from rostersync.store.table import RosterTable
from rostersync.tenants import create_tenant
from rostersync_cli.main import main
from rostersync_cli.stack import bind
from rostersync_local import moto_server

FIXED_AUDIENCE = "rostersync-api"
SIGN_IN_URL = "https://rostersync-abc.auth.us-east-1.amazoncognito.com"
CONTRACT = {"client_id", "client_secret", "token_url", "api_url"}


@dataclass
class DeployedStack:
    name: str
    tenant_id: str
    pool_id: str
    api_id: str
    table: RosterTable
    cognito: Any
    apigateway: Any

    def audience(self, authorizer: str = "ClientJwt") -> list[str]:
        items = self.apigateway.get_authorizers(ApiId=self.api_id)["Items"]
        return list(
            next(item for item in items if item["Name"] == authorizer)["JwtConfiguration"]["Audience"]
        )

    def reset_audience(self, audience: list[str]) -> None:
        """What a deploy of the template does to the /v1 authorizer (or an operator by hand)."""
        items = self.apigateway.get_authorizers(ApiId=self.api_id)["Items"]
        authorizer = next(item for item in items if item["Name"] == "ClientJwt")
        self.apigateway.update_authorizer(
            ApiId=self.api_id,
            AuthorizerId=authorizer["AuthorizerId"],
            JwtConfiguration={**authorizer["JwtConfiguration"], "Audience": audience},
        )


def run(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def deploy(table: RosterTable, stack_name: str, *, own_pool: bool) -> DeployedStack:
    """The stack's resources as the template makes them, and a CloudFormation stack with its outputs."""
    cognito = boto3.client("cognito-idp", region_name="us-east-1")
    apigateway = boto3.client("apigatewayv2", region_name="us-east-1")
    pool_id = cognito.create_user_pool(PoolName=f"{stack_name}-admins")["UserPool"]["Id"]
    cognito.create_resource_server(
        UserPoolId=pool_id, Identifier="rosters", Name="delivery", Scopes=[{"ScopeName": "read",
        "ScopeDescription": "read"}],
    )  # fmt: skip
    api_id = apigateway.create_api(Name=f"{stack_name}-HttpApi", ProtocolType="HTTP")["ApiId"]
    issuer = f"https://cognito-idp.us-east-1.amazonaws.com/{pool_id}"
    for name, audience in (("ClientJwt", FIXED_AUDIENCE), ("AdminJwt", "console-client")):
        apigateway.create_authorizer(
            ApiId=api_id, Name=name, AuthorizerType="JWT", IdentitySource=["$request.header.Authorization"],
            JwtConfiguration={"Issuer": issuer, "Audience": [audience]},
        )  # fmt: skip
    outputs = {
        "RosterTableName": table._table.name,
        "CourseSyncQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/course",
        "SyncRequestQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/request",
        "TenantSecretPrefix": f"rostersync/{stack_name}/tenants",
        "ApiUrl": f"https://{api_id}.execute-api.us-east-1.amazonaws.com",
        "HttpApiId": api_id,
        "ClientJwtAudience": FIXED_AUDIENCE,
        **({"AdminUserPoolId": pool_id, "AdminSignInUrl": SIGN_IN_URL} if own_pool else {}),
    }
    template = {
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{stack_name}-q"}}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName=stack_name, TemplateBody=json.dumps(template)
    )
    tenant = create_tenant(bind(Path("unused"), stack_name).services, name="Example University")
    return DeployedStack(stack_name, tenant.tenant_id, pool_id, api_id, table, cognito, apigateway)


@pytest.fixture
def deployed(table: RosterTable, monkeypatch: pytest.MonkeyPatch) -> Iterator[DeployedStack]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # moto lacks GetAuthorizers; the local stack's moto server adds it (rostersync_local.moto_server).
    monkeypatch.setattr(ApiGatewayV2Response, "get_authorizers", moto_server._get_authorizers, raising=False)
    yield deploy(table, "rostersync-test", own_pool=True)


def test_client_add_makes_an_app_client_registers_it_and_lets_it_through_the_authorizer(
    deployed: DeployedStack, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stack = ["--stack", deployed.name]
    code, out, err = run(
        capsys, *stack, "client", "add", "--tenant", deployed.tenant_id, "--name", "Platform"
    )
    assert code == 0, err
    created = json.loads(out)
    assert set(created) == CONTRACT
    client_id, secret = created["client_id"], created["client_secret"]
    assert created["token_url"] == f"{SIGN_IN_URL}/oauth2/token"
    assert created["api_url"] == f"https://{deployed.api_id}.execute-api.us-east-1.amazonaws.com"
    app = deployed.cognito.describe_user_pool_client(UserPoolId=deployed.pool_id, ClientId=client_id)
    app = app["UserPoolClient"]
    assert app["ClientSecret"] == secret and app["AllowedOAuthFlows"] == ["client_credentials"]
    assert app["AllowedOAuthScopes"] == ["rosters/read"] and app["AllowedOAuthFlowsUserPoolClient"]
    assert deployed.tenant_id in app["ClientName"]
    assert deployed.table.api_client(client_id) == ApiClient(
        client_id=client_id, tenant_id=deployed.tenant_id, name="Platform"
    )
    assert deployed.audience() == [FIXED_AUDIENCE, client_id]
    assert deployed.audience("AdminJwt") == ["console-client"]  # the admins' authorizer is left alone
    # The secret is on stdout once: not on stderr, in our log records or in the table (botocore's own
    # wire log at DEBUG, off unless asked for, holds every response).
    ours = [record.getMessage() for record in caplog.records if not record.name.startswith("botocore")]
    assert secret not in err and not [message for message in ours if secret in message]
    items = deployed.table._table.scan()["Items"]
    assert items and secret not in json.dumps(items, default=str)

    code, out, err = run(capsys, *stack, "client", "add", "--tenant", deployed.tenant_id, "--name", "Other")
    second = json.loads(out)["client_id"]
    assert code == 0 and deployed.audience() == [FIXED_AUDIENCE, *sorted([client_id, second])]

    # Another tenant's id does not remove it.
    code, out, err = run(capsys, *stack, "client", "remove", client_id, "--tenant", "tother")
    assert code == 1 and f"tenant tother has no client {client_id}" in err
    assert deployed.table.api_client(client_id) is not None
    code, out, err = run(capsys, *stack, "client", "remove", client_id, "--tenant", deployed.tenant_id)
    assert code == 0, err
    assert json.loads(out) == {"removed": client_id}
    assert deployed.table.api_client(client_id) is None
    with pytest.raises(deployed.cognito.exceptions.ResourceNotFoundException):
        deployed.cognito.describe_user_pool_client(UserPoolId=deployed.pool_id, ClientId=client_id)
    assert deployed.audience() == [FIXED_AUDIENCE, second]

    # A deploy that put back the template's audience: sync-audience lets the registered clients in again.
    authorizer = next(
        item
        for item in deployed.apigateway.get_authorizers(ApiId=deployed.api_id)["Items"]
        if item["Name"] == "ClientJwt"
    )
    deployed.apigateway.update_authorizer(
        ApiId=deployed.api_id,
        AuthorizerId=authorizer["AuthorizerId"],
        JwtConfiguration={**authorizer["JwtConfiguration"], "Audience": [FIXED_AUDIENCE]},
    )
    code, out, err = run(capsys, *stack, "client", "sync-audience")
    assert code == 0 and json.loads(out) == {"audience": [FIXED_AUDIENCE, second]}
    assert deployed.audience() == [FIXED_AUDIENCE, second]


def test_client_add_stops_before_the_authorizers_audience_quota(
    deployed: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    for number in range(MAX_AUDIENCE - 2):
        deployed.table.put_api_client(
            ApiClient(client_id=f"c{number}", tenant_id=deployed.tenant_id, name=f"n{number}")
        )
    arguments = ["--stack", deployed.name, "client", "add", "--tenant", deployed.tenant_id, "--name", "P"]
    code, out, err = run(capsys, *arguments)
    assert code == 0, err  # the 49th client: with the fixed audience, 50 entries
    assert len(deployed.audience()) == MAX_AUDIENCE
    clients_before = deployed.cognito.list_user_pool_clients(UserPoolId=deployed.pool_id, MaxResults=60)
    code, out, err = run(capsys, *arguments)
    assert code == 1 and out == ""
    assert "50 audiences per JWT authorizer" in err and "client remove" in err
    clients_after = deployed.cognito.list_user_pool_clients(UserPoolId=deployed.pool_id, MaxResults=60)
    assert clients_after["UserPoolClients"] == clients_before["UserPoolClients"]  # nothing was made
    assert len(deployed.table.list_api_clients(deployed.tenant_id)) == MAX_AUDIENCE - 1


def test_a_client_add_that_cannot_reach_the_authorizer_leaves_no_client_behind(
    deployed: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    for item in deployed.apigateway.get_authorizers(ApiId=deployed.api_id)["Items"]:
        if item["Name"] == "ClientJwt":  # say, renamed in a later template
            deployed.apigateway.delete_authorizer(ApiId=deployed.api_id, AuthorizerId=item["AuthorizerId"])
    arguments = ["--stack", deployed.name, "client", "add", "--tenant", deployed.tenant_id, "--name", "P"]
    code, out, err = run(capsys, *arguments)
    assert code == 1 and out == ""
    assert f"the HTTP API {deployed.api_id} has no authorizer named ClientJwt" in err
    assert deployed.cognito.list_user_pool_clients(UserPoolId=deployed.pool_id)["UserPoolClients"] == []
    assert deployed.table.list_api_clients(deployed.tenant_id) == []


def test_with_an_institutions_idp_client_add_explains_and_registers_an_existing_client_id(
    table: RosterTable, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(ApiGatewayV2Response, "get_authorizers", moto_server._get_authorizers, raising=False)
    deployed = deploy(table, "rostersync-institution", own_pool=False)
    add = ["--stack", deployed.name, "client", "add", "--tenant", deployed.tenant_id, "--name", "Platform"]
    code, out, err = run(capsys, *add)
    assert code == 1 and out == ""
    assert "institution's IdP" in err and "--client-id ID" in err
    assert deployed.table.list_api_clients(deployed.tenant_id) == []
    code, out, err = run(capsys, *add, "--client-id", "idp-client-7")
    assert code == 0, err
    assert json.loads(out) == {"client_id": "idp-client-7", "api_url": json.loads(out)["api_url"]}
    assert deployed.table.api_client("idp-client-7") == ApiClient(
        client_id="idp-client-7", tenant_id=deployed.tenant_id, name="Platform"
    )
    assert deployed.audience() == [FIXED_AUDIENCE, "idp-client-7"]
    code, out, err = run(capsys, "--stack", deployed.name, "client", "remove", "idp-client-7", "--tenant",
                         deployed.tenant_id)  # fmt: skip
    assert code == 0 and deployed.audience() == [FIXED_AUDIENCE]


def _register(deployed: DeployedStack, *client_ids: str) -> None:
    for client_id in client_ids:
        deployed.table.put_api_client(
            ApiClient(client_id=client_id, tenant_id=deployed.tenant_id, name=client_id)
        )


def _repair(deployed: DeployedStack) -> tuple[AudienceRepair, list[str]]:
    """One run of the scheduled repair; and the authorizer writes it sent (counted on the wire)."""
    apigateway = boto3.client("apigatewayv2", region_name="us-east-1")
    writes: list[str] = []
    apigateway.meta.events.register(
        "before-call.apigatewayv2.UpdateAuthorizer", lambda params, **_: writes.append(params["url_path"])
    )
    audience = DeliveryAudience(ApiAuthorizer(deployed.api_id, client=apigateway), FIXED_AUDIENCE)
    return repair_audience(bind(Path("unused"), deployed.name).services, audience), writes


def test_the_repair_restores_an_audience_a_deploy_reset_in_one_run(deployed: DeployedStack) -> None:
    _register(deployed, "client-b", "client-a")
    deployed.reset_audience([FIXED_AUDIENCE])
    repair, writes = _repair(deployed)
    assert repair == AudienceRepair(added=["client-a", "client-b"], removed=[]) and len(writes) == 1
    assert deployed.audience() == [FIXED_AUDIENCE, "client-a", "client-b"]
    assert deployed.audience("AdminJwt") == ["console-client"]


def test_the_repair_writes_nothing_when_the_audience_matches_the_registry(deployed: DeployedStack) -> None:
    _register(deployed, "client-a")
    deployed.reset_audience(["client-a", FIXED_AUDIENCE])  # the same ids, in another order
    repair, writes = _repair(deployed)
    assert repair == AudienceRepair(added=[], removed=[]) and writes == []
    assert deployed.audience() == ["client-a", FIXED_AUDIENCE]


def test_the_repair_takes_out_an_id_nobody_registered(deployed: DeployedStack) -> None:
    _register(deployed, "client-a")
    deployed.reset_audience([FIXED_AUDIENCE, "client-a", "stranger"])
    repair, writes = _repair(deployed)
    assert repair == AudienceRepair(added=[], removed=["stranger"]) and len(writes) == 1
    assert deployed.audience() == [FIXED_AUDIENCE, "client-a"]


def test_the_repair_function_refuses_to_start_without_its_api_or_audience() -> None:
    settings = Settings(
        table_name="t", course_sync_queue_url="q", sync_request_queue_url="q", tenant_secret_prefix="p"
    )
    with pytest.raises(ValueError, match="DELIVERY_API_ID, CLIENT_JWT_AUDIENCE not set"):
        configured_delivery_audience(settings)
