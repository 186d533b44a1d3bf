"""The delivery API (/v1), the change feed and the roster event bus, on the session's local stack: real
HTTP through the local API Gateway (JWT authorizer and scopes), the table's stream polled by the runner,
moto's EventBridge delivering to the example consumer queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from openapi_spec_validator import validate

from tests.integration.conftest import Stack, running_stack

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = {path.stem: json.loads(path.read_text()) for path in (ROOT / "events" / "schemas").glob("*.json")}


def client_token(stack: Stack, client_id: str, scope: str) -> str:
    """A token as the grant would issue it, with any scope (the grant itself only grants rosters/read)."""
    control_url = json.loads((stack.state_dir / "stack.json").read_text())["control_url"]
    response = requests.post(
        f"{control_url}/client-tokens", json={"client_id": client_id, "scope": scope}, timeout=30
    )
    response.raise_for_status()
    return str(response.json()["token"])


class Client:
    """A machine client of one tenant, made as the platform's operator would (`rostersync client add`),
    holding a token from the client-credentials grant."""

    def __init__(self, stack: Stack, tenant_id: str, name: str) -> None:
        created = json.loads(stack.cli_ok("client", "add", "--tenant", tenant_id, "--name", name))
        assert set(created) == {"client_id", "client_secret", "token_url", "api_url"}
        assert created["api_url"] == stack.api_url
        grant = requests.post(
            created["token_url"],
            data={"grant_type": "client_credentials"},
            auth=(created["client_id"], created["client_secret"]),
            timeout=30,
        )
        assert grant.status_code == 200, grant.text
        self.stack, self.client_id, self.credentials = stack, created["client_id"], created
        self.headers = {"Authorization": f"Bearer {grant.json()['access_token']}"}

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.get(f"{self.stack.api_url}{path}", headers=headers, timeout=60, **kwargs)

    def ok(self, path: str, **kwargs: Any) -> Any:
        response = self.get(path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def every_change(self, after: str | None = None) -> list[dict[str, Any]]:
        changes: list[dict[str, Any]] = []
        while True:
            page = self.ok("/v1/changes", params={"limit": 500, **({"after": after} if after else {})})
            changes.extend(page["items"])
            if page["next"] is None:
                return changes
            after = page["next"]


Synced = tuple[str, Client, dict[str, Any]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """This module's own stack, its table's stream read as the template says: the bus and the example
    consumer queue carry only this module's changes (the session's stack leaves its stream unread)."""
    with running_stack(tmp_path_factory.mktemp("delivery-stack"), seed=5, courses=8) as stack:
        yield stack


@pytest.fixture(scope="module")
def synced(stack: Stack) -> Iterator[Synced]:
    """A tenant after its first sync, its client, and its export then."""
    tenant_id = stack.connect_tenant()
    stack.cli_ok("sync", "run", "--tenant", tenant_id, "--wait", "--force")
    yield tenant_id, Client(stack, tenant_id, "Assessment platform"), stack.export(tenant_id)


def active_by_course(changes: list[dict[str, Any]]) -> dict[int, dict[int, dict[str, Any]]]:
    """Replay: each enrollment's last state, per course; the active ones."""
    last: dict[int, dict[int, dict[str, Any]]] = {}
    for change in changes:
        if change["type"].startswith("enrollment."):
            last.setdefault(change["course_id"], {})[change["data"]["canvas_id"]] = change["data"]
    return {
        course: {eid: data for eid, data in enrollments.items() if data["active"]}
        for course, enrollments in last.items()
    }


def test_replaying_the_feed_rebuilds_the_export_and_each_roster_equals_its_export(
    stack: Stack, synced: Synced
) -> None:
    _, client, export = synced
    assert export["courses"]
    rebuilt = active_by_course(client.every_change())
    expected = {
        course["canvas_id"]: {e["canvas_id"]: e for e in course["enrollments"] if e["active"]}
        for course in export["courses"]
    }
    assert {course: enrollments for course, enrollments in rebuilt.items() if enrollments} == {
        course: enrollments for course, enrollments in expected.items() if enrollments
    }
    listed = client.ok("/v1/courses")
    assert [c["canvas_id"] for c in listed["items"]] == sorted(
        (c["canvas_id"] for c in export["courses"]), key=str
    )  # key order: course ids as text
    assert all(item["synced_at"] for item in listed["items"]) and listed["next"] is None
    by_size = sorted(export["courses"], key=lambda c: len(c["enrollments"]))
    for course in {c["canvas_id"]: c for c in (by_size[0], by_size[len(by_size) // 2], by_size[-1])}.values():
        assert client.ok(f"/v1/courses/{course['canvas_id']}/roster") == course
    user = export["courses"][0]["enrollments"][0]["user_id"]
    enrollments = client.ok(f"/v1/users/{user}/enrollments")["items"]
    expected_user = [
        {**e, "course_id": c["canvas_id"]}
        for c in export["courses"]
        for e in c["enrollments"]
        if e["user_id"] == user
    ]
    assert sorted(enrollments, key=lambda e: (e["course_id"], e["canvas_id"])) == sorted(
        expected_user, key=lambda e: (e["course_id"], e["canvas_id"])
    )


def test_a_roster_has_an_etag_and_an_unchanged_one_answers_304(synced: Synced) -> None:
    _, client, _ = synced
    course_id = client.ok("/v1/courses")["items"][0]["canvas_id"]
    first = client.get(f"/v1/courses/{course_id}/roster")
    etag = first.headers["ETag"]
    again = client.get(f"/v1/courses/{course_id}/roster", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag and again.content == b""
    stale = client.get(f"/v1/courses/{course_id}/roster", headers={"If-None-Match": '"something else"'})
    assert stale.status_code == 200 and stale.json() == first.json()


def test_bad_input_and_other_tenants_are_refused(stack: Stack, synced: Synced) -> None:
    _, client, _ = synced
    course_id = client.ok("/v1/courses")["items"][0]["canvas_id"]
    other_tenant = stack.connect_tenant()
    other = Client(stack, other_tenant, "Another platform")
    # Another tenant's course reads as no course at all; its feed and course list are its own (empty).
    assert other.get(f"/v1/courses/{course_id}/roster").status_code == 404
    assert other.ok("/v1/changes") == {"items": [], "next": None}
    assert other.ok("/v1/courses") == {"items": [], "next": None}
    assert client.get("/v1/courses/999999999/roster").status_code == 404
    for params in (
        {"after": "not-a-cursor"},
        {"after": "YzEuNQ"},
        {"limit": 501},
        {"limit": 0},
        {"limit": "x"},
    ):
        refused = client.get("/v1/changes", params=params)
        assert refused.status_code == 400 and "error" in refused.json(), params
    assert client.get("/v1/courses", params={"cursor": "ZjEuMS4wLjE"}).status_code == 400
    assert client.get("/v1/courses/abc/roster").status_code == 400
    # No token, a token without the scope, a removed client's token.
    assert requests.get(f"{stack.api_url}/v1/changes", timeout=30).status_code == 401
    unscoped = {"Authorization": f"Bearer {client_token(stack, client.client_id, scope='other/read')}"}
    assert requests.get(f"{stack.api_url}/v1/changes", headers=unscoped, timeout=30).status_code == 403
    # The grant itself: a wrong secret or grant type gets no token.
    token_url = other.credentials["token_url"]
    wrong = requests.post(
        token_url, data={"grant_type": "client_credentials"}, auth=(other.client_id, "x"), timeout=30
    )
    assert wrong.status_code == 401 and "access_token" not in wrong.json()
    secret = other.credentials["client_secret"]
    password = requests.post(
        token_url, data={"grant_type": "password"}, auth=(other.client_id, secret), timeout=30
    )
    assert password.status_code == 400
    listed = json.loads(stack.cli_ok("client", "list", "--tenant", other_tenant, "--format", "json"))
    assert listed == [{"client_id": other.client_id, "tenant_id": other_tenant, "name": "Another platform"}]
    assert other.get("/v1/changes").status_code == 200
    stack.cli_ok("client", "remove", other.client_id, "--tenant", other_tenant)
    assert other.get("/v1/changes").status_code == 401  # its token has not expired: the next request stops
    again = requests.post(
        token_url, data={"grant_type": "client_credentials"}, auth=(other.client_id, secret), timeout=30
    )
    assert again.status_code == 401
    # No client secret or token in a log line of ours (functions, runner, identity provider); moto's log
    # stands for AWS, which holds them.
    logs = [path for path in (stack.state_dir / "logs").glob("*.log") if path.name != "moto.log"]
    texts = [path.read_text(errors="replace") for path in logs]
    issued = [client.credentials["client_secret"], secret, client.headers["Authorization"].split()[1]]
    assert texts and not [value[:4] for value in issued for text in texts if value in text]


def test_the_openapi_document_is_valid_openapi_3_1_and_describes_every_route(stack: Stack) -> None:
    document = requests.get(f"{stack.api_url}/v1/openapi.json", timeout=30).json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert {
        "/v1/courses",
        "/v1/courses/{canvas_id}/roster",
        "/v1/users/{canvas_id}/enrollments",
        "/v1/changes",
    } <= set(document["paths"])


def consumer_events(stack: Stack, tenant_id: str, expected_ids: set[str]) -> list[dict[str, Any]]:
    """The tenant's events from the example consumer queue: read until every expected id came, then
    once more (anything else, or a repeat, would be there too)."""
    sqs = stack.aws("sqs")
    url = stack.outputs["ExampleConsumerQueueUrl"]
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    last_round = False
    while not last_round:
        last_round = expected_ids <= {e["detail"]["id"] for e in events} or time.monotonic() > deadline
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            event = json.loads(message["Body"])
            if event["detail"]["tenant_id"] == tenant_id:
                events.append(event)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return events


def test_a_canvas_drop_is_one_feed_change_and_one_consumer_event(stack: Stack, synced: Synced) -> None:
    tenant_id, client, export = synced
    # The first sync's events, each valid against its detail-type's schema, one per feed change.
    changes = client.every_change()
    first = consumer_events(stack, tenant_id, {change["cursor"] for change in changes})
    for event in first:
        jsonschema.validate(event, SCHEMAS[event["detail-type"]])
    assert {event["detail"]["id"] for event in first} == {change["cursor"] for change in changes}
    head = changes[-1]["cursor"]

    course = max(export["courses"], key=lambda c: len(c["enrollments"]))
    enrollment = next(e for e in course["enrollments"] if e["active"])
    stack.canvas("POST", "/_sim/changes/drop", json={"enrollment_id": enrollment["canvas_id"]})
    stack.cli_ok(
        "sync", "run", "--tenant", tenant_id, "--course", str(course["canvas_id"]), "--wait", "--force"
    )

    after = client.every_change(head)
    roster_changes = [change for change in after if change["type"] != "course.synced"]
    assert [(c["type"], c["course_id"], c["data"]["canvas_id"]) for c in roster_changes] == [
        ("enrollment.dropped", course["canvas_id"], enrollment["canvas_id"])
    ]
    dropped = roster_changes[0]
    assert dropped["data"]["active"] is False and dropped["data"]["state"] == "dropped"
    received = consumer_events(stack, tenant_id, {change["cursor"] for change in after})
    for event in received:
        jsonschema.validate(event, SCHEMAS[event["detail-type"]])
    by_id = {event["detail"]["id"]: event for event in received}  # at least once: a repeat has the same id
    drops = [event for event in by_id.values() if event["detail-type"].startswith("enrollment.")]
    assert [event["detail"] for event in drops] == [
        {"id": dropped["cursor"], "tenant_id": tenant_id, **dropped}
    ]
