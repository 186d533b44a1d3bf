"""The local runner's Lambda semantics: SQS batches and partial failures, API routes, warm hosts."""

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from rostersync_local.api_gateway import ApiGateway
from rostersync_local.control import REPO_ROOT
from rostersync_local.functions import FunctionPool, Invocation
from rostersync_local.queues import QueuePoller
from rostersync_local.schedules import rate_seconds
from rostersync_local.template import FunctionSpec, QueueTriggerSpec, RouteSpec, load_stack

CREDENTIALS = {"region_name": "us-east-1", "aws_access_key_id": "local", "aws_secret_access_key": "local"}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=moto_endpoint, **CREDENTIALS)


def make_queues(sqs: Any, name: str, max_receive_count: int) -> tuple[str, str]:
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})
    queue = sqs.create_queue(
        QueueName=name, Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "30"}
    )["QueueUrl"]
    return queue, dlq


def poller(sqs: Any, queue_url: str, invoke: Any, batch_size: int = 10) -> QueuePoller:
    trigger = QueueTriggerSpec("Trigger", "Queue", "Fn", batch_size, True, None)
    return QueuePoller(
        trigger, queue_url=queue_url, queue_name=queue_url.rsplit("/", 1)[1], sqs=sqs, invoke=invoke,
        concurrency=1, retry_delay_seconds=0,
    )  # fmt: skip


def depth(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_only_reported_failures_return_and_they_reach_the_dlq_after_max_receives(sqs: Any) -> None:
    queue, dlq = make_queues(sqs, "partial", max_receive_count=2)
    for body in ("good-1", "bad", "good-2"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    seen: list[list[str]] = []

    def invoke(function: str, event: Any) -> Invocation:
        records = event["Records"]
        seen.append([record["body"] for record in records])
        assert all(
            record["eventSource"] == "aws:sqs" and record["attributes"]["SentTimestamp"] for record in records
        )
        failures = [{"itemIdentifier": r["messageId"]} for r in records if r["body"] == "bad"]
        return Invocation(payload={"batchItemFailures": failures})

    subject = poller(sqs, queue, invoke)
    for _ in range(4):
        subject.poll_once()
    assert sorted(seen[0]) == ["bad", "good-1", "good-2"]
    assert all(batch == ["bad"] for batch in seen[1:] if batch)
    assert depth(sqs, queue) == 0
    moved = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert [message["Body"] for message in moved] == ["bad"]


def test_a_function_error_returns_the_whole_batch(sqs: Any) -> None:
    queue, _ = make_queues(sqs, "whole", max_receive_count=5)
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    subject = poller(sqs, queue, lambda function, event: Invocation(error={"errorMessage": "boom"}))
    assert subject.poll_once() == 2
    assert depth(sqs, queue) == 2


def test_batch_size_bounds_the_records_of_one_invocation(sqs: Any) -> None:
    queue, _ = make_queues(sqs, "sized", max_receive_count=5)
    for index in range(5):
        sqs.send_message(QueueUrl=queue, MessageBody=str(index))
    sizes: list[int] = []

    def invoke(function: str, event: Any) -> Invocation:
        sizes.append(len(event["Records"]))
        return Invocation(payload={"batchItemFailures": []})

    subject = poller(sqs, queue, invoke, batch_size=2)
    while depth(sqs, queue):
        subject.poll_once()
    assert sum(sizes) == 5 and max(sizes) <= 2


def test_routes_prefer_literal_segments_and_carry_path_parameters() -> None:
    gateway = ApiGateway(
        [
            RouteSpec("GET", "/tenants/{tenant_id}", "ById"),
            RouteSpec("GET", "/tenants/me", "Me"),
            RouteSpec("ANY", "/files/{proxy+}", "Files"),
        ],
        lambda function, event: Invocation(),
        lambda token, authorizer: None,
    )
    assert gateway.match("GET", "/tenants/me") == (RouteSpec("GET", "/tenants/me", "Me"), {})
    assert gateway.match("GET", "/tenants/t1")[1] == {"tenant_id": "t1"}  # type: ignore[index]
    assert gateway.match("DELETE", "/files/a/b")[1] == {"proxy": "a/b"}  # type: ignore[index]
    assert gateway.match("POST", "/tenants/t1") is None


def test_schedule_rates() -> None:
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("cron(0 2 * * ? *)") is None


def test_a_parameter_override_reaches_the_local_schedule() -> None:
    def tick(overrides: dict[str, str]) -> int | None:
        model = load_stack(REPO_ROOT / "template.yaml", "rostersync-local", overrides)
        return rate_seconds(next(iter(model.schedules.values())).expression)

    assert tick({}) == 15 * 60  # the template's default
    assert tick({"SyncScheduleExpression": "rate(1 day)"}) == 24 * 3600  # as make bench starts the stack


def test_hosts_stay_warm_report_errors_and_are_killed_on_timeout(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import os, time
            STARTED = time.time()
            def handler(event, context):
                if event.get("sleep"):
                    time.sleep(event["sleep"])
                if event.get("fail"):
                    raise ValueError("bad event")
                print("a log line that must not corrupt the reply")
                return {"started": STARTED, "name": context.function_name, "env": os.environ.get("ONLY_HERE")}
            """
        )
    )
    spec = FunctionSpec("Fn", "stack-Fn", tmp_path, "app.handler", 1, 128, {"ONLY_HERE": "yes"}, None)
    pool = FunctionPool(spec, {}, tmp_path, concurrency=1)
    try:
        first, second = pool.invoke({}), pool.invoke({})
        assert first.cold_start and not second.cold_start
        assert (
            first.payload
            == second.payload
            == {"started": first.payload["started"], "name": "stack-Fn", "env": "yes"}
        )
        failed = pool.invoke({"fail": True})
        assert failed.error is not None and failed.error["errorType"] == "ValueError"
        timed_out = pool.invoke({"sleep": 3})
        assert timed_out.error is not None and "timed out" in timed_out.error["errorMessage"]
        assert pool.invoke({}).cold_start  # the killed host is replaced
    finally:
        pool.close()
    assert "a log line" in (tmp_path / "Fn.log").read_text()


def test_routes_with_a_jwt_authorizer_never_reach_the_function_without_a_valid_token() -> None:
    from werkzeug.test import Client

    from rostersync_local.identity_provider import LocalIdentityProvider
    from rostersync_local.template import JwtAuthorizerSpec

    issuer = LocalIdentityProvider("http://issuer.test")
    spec = JwtAuthorizerSpec("http://issuer.test", ("console-client",))
    invoked: list[Any] = []

    def invoke(function: str, event: Any) -> Invocation:
        invoked.append(event)
        return Invocation(payload={"statusCode": 200, "body": "ok"})

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    client = Client(ApiGateway([RouteSpec("GET", "/admin/{proxy+}", "Admin", spec)], invoke, issuer.verify))
    assert client.get("/admin/tenant").status_code == 401
    assert client.get("/admin/tenant", headers=bearer("junk")).status_code == 401
    other_key = LocalIdentityProvider("http://issuer.test").access_token("u1", "console-client")
    assert client.get("/admin/tenant", headers=bearer(other_key)).status_code == 401
    expired = issuer.access_token("u1", "console-client", ttl_seconds=-60)
    assert client.get("/admin/tenant", headers=bearer(expired)).status_code == 401
    other_client = issuer.access_token("u1", "another-client")  # Cognito's access tokens: client_id
    assert client.get("/admin/tenant", headers=bearer(other_client)).status_code == 401
    other_issuer = LocalIdentityProvider("http://elsewhere.test")
    other_issuer._key = issuer._key  # the same key, another issuer
    assert issuer.verify(other_issuer.access_token("u1", "console-client"), spec) is None
    claims = {"iss": "http://issuer.test", "sub": "u1", "aud": "someone-else", "exp": 2**40}
    with_audience = issuer.sign(claims)
    assert client.get("/admin/tenant", headers=bearer(with_audience)).status_code == 401
    assert invoked == []
    answer = client.get("/admin/tenant", headers=bearer(issuer.access_token("u1", "console-client")))
    assert answer.status_code == 200
    assert invoked[0]["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "u1"


def test_a_route_with_authorization_scopes_refuses_a_valid_token_without_one_of_them() -> None:
    from werkzeug.test import Client

    from rostersync_local.identity_provider import LocalIdentityProvider
    from rostersync_local.template import JwtAuthorizerSpec

    issuer = LocalIdentityProvider("http://issuer.test")
    spec = JwtAuthorizerSpec("http://issuer.test", ("rostersync-api",))
    invoked: list[Any] = []

    def invoke(function: str, event: Any) -> Invocation:
        invoked.append(event)
        return Invocation(payload={"statusCode": 200, "body": "ok"})

    route = RouteSpec("GET", "/v1/{proxy+}", "Delivery", spec, ("rosters/read",))
    client = Client(ApiGateway([route], invoke, issuer.verify))

    def bearer(scope: str) -> dict[str, str]:
        token = issuer.access_token("c1", "c1", scope=scope, audience="rostersync-api")
        return {"Authorization": f"Bearer {token}"}

    assert client.get("/v1/changes", headers=bearer("other/read")).status_code == 403
    assert client.get("/v1/changes", headers=bearer("")).status_code == 403
    assert invoked == []
    assert client.get("/v1/changes", headers=bearer("profile rosters/read")).status_code == 200
    authorizer = invoked[0]["requestContext"]["authorizer"]["jwt"]
    assert authorizer["claims"]["client_id"] == "c1" and authorizer["scopes"] == ["profile", "rosters/read"]


def test_the_identity_providers_client_credentials_grant_checks_the_app_client_in_moto(
    moto_endpoint: str,
) -> None:
    from werkzeug.test import Client

    from rostersync.store.user_pool import UserPool
    from rostersync_local.identity_provider import LocalIdentityProvider, UserDirectory
    from rostersync_local.template import JwtAuthorizerSpec

    cognito = boto3.client("cognito-idp", endpoint_url=moto_endpoint, **CREDENTIALS)
    pool_id = cognito.create_user_pool(PoolName="grant")["UserPool"]["Id"]
    cognito.create_resource_server(
        UserPoolId=pool_id, Identifier="rosters", Name="delivery", Scopes=[{"ScopeName": "read",
        "ScopeDescription": "read"}],
    )  # fmt: skip
    console = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="console", AllowedOAuthFlows=["code"], AllowedOAuthScopes=["openid"]
    )["UserPoolClient"]["ClientId"]
    # A secret but not the grant: a client only allowed the authorization code flow.
    coded = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="coded", GenerateSecret=True, AllowedOAuthFlows=["code"],
        AllowedOAuthScopes=["rosters/read"], AllowedOAuthFlowsUserPoolClient=True,
    )["UserPoolClient"]  # fmt: skip
    pool = UserPool(pool_id, cognito)
    machine = pool.create_machine_client("rostersync-client t1 platform")
    provider = LocalIdentityProvider("http://issuer.test")
    provider.serve(UserDirectory(cognito, pool_id, console), [])
    client = Client(provider)

    def grant(auth: tuple[str, str] | None, **form: str) -> Any:
        return client.post("/oauth2/token", data={"grant_type": "client_credentials", **form}, auth=auth)

    assert "client_credentials" in provider.openid_configuration()["grant_types_supported"]
    secret = machine.client_secret
    for refused in (
        grant(None),
        grant((machine.client_id, "wrong")),
        grant(("unknown", secret)),
        grant((console, "")),
        grant((machine.client_id, secret + "é")),
    ):
        assert refused.status_code == 401 and refused.json == {
            "error": "invalid_client",
            "error_description": "the client id or secret is wrong",
        }
    not_allowed = grant((coded["ClientId"], coded["ClientSecret"]))
    assert not_allowed.status_code == 400 and not_allowed.json["error"] == "unauthorized_client"
    assert grant((machine.client_id, secret), scope="openid rosters/read").json["error"] == "invalid_scope"
    answer = grant((machine.client_id, secret))
    assert answer.status_code == 200 and answer.json["scope"] == "rosters/read"
    assert answer.headers["Cache-Control"] == "no-store"
    token = answer.json["access_token"]
    # As Cognito's: `client_id` and no `aud`, so the authorizer takes it only with the id in its audience.
    assert provider.verify(token, JwtAuthorizerSpec("http://issuer.test", ("rostersync-api",))) is None
    claims = provider.verify(
        token, JwtAuthorizerSpec("http://issuer.test", ("rostersync-api", machine.client_id))
    )
    assert claims is not None and "aud" not in claims
    assert (claims["client_id"], claims["sub"], claims["scope"]) == (machine.client_id,) * 2 + (
        "rosters/read",
    )
    pool.delete_app_client(machine.client_id)
    pool.delete_app_client(machine.client_id)  # a repeated removal is no error
    assert grant((machine.client_id, secret)).status_code == 401


def test_the_local_gateway_takes_a_client_token_once_its_id_is_in_the_audience_moto_holds(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.apigatewayv2.responses import ApiGatewayV2Response
    from werkzeug.test import Client

    from rostersync.store.api_authorizer import ApiAuthorizer
    from rostersync_local import moto_server
    from rostersync_local.http_api import LiveAudienceAuthorizer, create_authorizers
    from rostersync_local.identity_provider import LocalIdentityProvider
    from rostersync_local.template import JwtAuthorizerSpec

    monkeypatch.setattr(ApiGatewayV2Response, "get_authorizers", moto_server._get_authorizers, raising=False)
    apigateway = boto3.client("apigatewayv2", endpoint_url=moto_endpoint, **CREDENTIALS)
    api_id = apigateway.create_api(Name="local-HttpApi", ProtocolType="HTTP")["ApiId"]
    issuer = LocalIdentityProvider("http://issuer.test")
    spec = JwtAuthorizerSpec("http://issuer.test", ("rostersync-api",), "ClientJwt")
    route = RouteSpec("GET", "/v1/{proxy+}", "Delivery", spec, ("rosters/read",))
    create_authorizers(apigateway, api_id, [route])
    invoked: list[Any] = []

    def invoke(function: str, event: Any) -> Invocation:
        invoked.append(event)
        return Invocation(payload={"statusCode": 200, "body": "ok"})

    gateway = Client(ApiGateway([route], invoke, LiveAudienceAuthorizer(apigateway, api_id, issuer.verify)))
    headers = {"Authorization": f"Bearer {issuer.machine_token('c1', 'rosters/read')}"}
    assert gateway.get("/v1/changes", headers=headers).status_code == 401
    authorizer = ApiAuthorizer(api_id, client=apigateway)
    authorizer.set_audience(["rostersync-api", "c1"])  # what `rostersync client add` does
    assert gateway.get("/v1/changes", headers=headers).status_code == 200
    assert len(invoked) == 1
