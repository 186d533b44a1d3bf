"""The Canvas simulator's data-changing admin API and its live events (format, delivery, signing, chaos)."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from moto.server import ThreadedMotoServer
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from rostersync_local.canvas_sim import RunningSimulator, SimulatorConfig, serve
from rostersync_local.canvas_sim.__main__ import config_from_args, parse_args

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

TIMEOUT = 10
SHARD = 10**13
EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
JWT_CLAIMS = {"iat", "exp", "jti"}


# --------------------------------------------------------------------------------------------- helpers
def gid(local: int) -> str:
    return str(SHARD + local)


class Receiver:
    """A tiny HTTP endpoint recording every POST (answers the queued statuses first, then 200)."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, str]] = []  # (content type, body)
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
            if status == 200:
                self.bodies.append((request.content_type or "", request.get_data(as_text=True)))
        return Response("ok", status=status)(environ, start_response)

    def json_bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.bodies]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with serve(SimulatorConfig(seed=11, courses=6)) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def post(sim: RunningSimulator, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = requests.post(f"{sim.url}{path}", json=body, timeout=TIMEOUT)
    assert response.status_code == status, response.text
    data: dict[str, Any] = response.json()
    return data


def get(sim: RunningSimulator, path: str, token: str | None = None, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{sim.url}{path}", params=params, headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def log(sim: RunningSimulator) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = get(sim, "/_sim/live_events/log")
    return entries


def flush(sim: RunningSimulator) -> dict[str, Any]:
    return post(sim, "/_sim/live_events/flush", {"timeout_seconds": 10})


def truth(sim: RunningSimulator) -> dict[str, Any]:
    data: dict[str, Any] = get(sim, "/_sim/ground_truth")
    return data


def active_student(data: dict[str, Any], course_id: int, section_id: int | None = None) -> dict[str, Any]:
    return next(
        e
        for e in data["enrollments"]
        if e["course_id"] == course_id
        and e["type"] == "StudentEnrollment"
        and e["enrollment_state"] == "active"
        and (section_id is None or e["course_section_id"] == section_id)
    )


def outsider(data: dict[str, Any], course_id: int) -> int:
    """A user with no enrollment in the course."""
    inside = {e["user_id"] for e in data["enrollments"] if e["course_id"] == course_id}
    return int(next(u["id"] for u in data["users"] if u["id"] not in inside))


def course_with_two_sections(data: dict[str, Any]) -> tuple[int, list[int]]:
    by_course: dict[int, list[int]] = {}
    for section in data["sections"]:
        if section["nonxlist_course_id"] is None:
            by_course.setdefault(section["course_id"], []).append(section["id"])
    course_id = next(c for c, ids in by_course.items() if len(ids) >= 2)
    return course_id, by_course[course_id]


def assert_tenant_fields(sim: RunningSimulator, event: dict[str, Any], data: dict[str, Any]) -> None:
    metadata = event["metadata"]
    root = data["root_account"]
    assert metadata["root_account_uuid"] == root["uuid"]
    assert metadata["root_account_id"] == gid(root["id"])
    assert metadata["root_account_lti_guid"] == root["lti_guid"]
    assert metadata["hostname"] == urlsplit(sim.url).netloc
    assert metadata["producer"] == "canvas"
    assert metadata["user_id"] == gid(data["api_user"]["id"])
    assert EVENT_TIME.match(metadata["event_time"]), metadata["event_time"]


def b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def verify_jws(token: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check an RS256 compact JWS against the JWKS (raises InvalidSignature) -> (header, claims)."""
    head, payload, signature = token.split(".")
    header = json.loads(b64decode(head))
    assert header["alg"] == "RS256"
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    numbers = rsa.RSAPublicNumbers(
        int.from_bytes(b64decode(jwk["e"]), "big"), int.from_bytes(b64decode(jwk["n"]), "big")
    )
    numbers.public_key().verify(
        b64decode(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    return header, json.loads(b64decode(payload))


# ------------------------------------------------------------------------------------------- changes
def test_enroll_new_user_appears_everywhere_and_emits_three_events(sim: RunningSimulator) -> None:
    before = truth(sim)
    course = next(c for c in before["courses"] if c["workflow_state"] == "available")
    user = {
        "first_name": "Ada",
        "last_name": "Quill",
        "email": "ada.quill@example.edu",
        "sis_user_id": "NEW-1",
    }
    result = post(sim, "/_sim/changes/enroll", {"course_id": course["id"], "user": user}, status=201)
    user_id, enrollment_id = result["user_id"], result["enrollment_id"]
    assert [e["event_name"] for e in result["events"]] == [
        "user_created",
        "enrollment_created",
        "enrollment_state_created",
    ]

    token = sim.create_token()["access_token"]
    enrollments = get(sim, f"/api/v1/courses/{course['id']}/enrollments", token, per_page=100)
    mine = next(e for e in enrollments if e["id"] == enrollment_id)
    assert (mine["user_id"], mine["enrollment_state"], mine["sis_user_id"]) == (user_id, "active", "NEW-1")
    users = get(sim, f"/api/v1/courses/{course['id']}/users", token, per_page=100)
    assert any(u["id"] == user_id and u["name"] == "Ada Quill" for u in users)
    after = truth(sim)
    assert any(u["id"] == user_id and u["email"] == "ada.quill@example.edu" for u in after["users"])
    assert any(e["id"] == enrollment_id and e["course_id"] == course["id"] for e in after["enrollments"])
    assert len(after["enrollments"]) == len(before["enrollments"]) + 1

    events = {e["event_name"]: e["payload"] for e in log(sim)}
    for event in events.values():
        assert_tenant_fields(sim, event, after)
    created = events["user_created"]["body"]
    assert (created["user_id"], created["name"], created["user_sis_id"]) == (
        gid(user_id),
        "Ada Quill",
        "NEW-1",
    )
    assert created["workflow_state"] == "pre_registered"
    enrollment = events["enrollment_created"]
    assert enrollment["metadata"]["context_type"] == "Course"
    assert enrollment["metadata"]["context_id"] == gid(course["id"])
    body = enrollment["body"]
    assert body["enrollment_id"] == gid(enrollment_id)
    assert (body["user_id"], body["course_id"]) == (gid(user_id), gid(course["id"]))
    assert body["course_section_id"] == gid(result["section_id"])
    assert (body["type"], body["workflow_state"], body["user_name"]) == (
        "StudentEnrollment",
        "active",
        "Ada Quill",
    )
    assert "associated_user_id" not in body  # only observers carry it
    state = events["enrollment_state_created"]["body"]
    assert (state["enrollment_id"], state["state"]) == (gid(enrollment_id), "active")


def test_enroll_rejects_a_section_of_another_course(sim: RunningSimulator) -> None:
    data = truth(sim)
    first, second = data["courses"][0]["id"], data["courses"][1]["id"]
    section = next(s["id"] for s in data["sections"] if s["course_id"] == second)
    user_id = data["users"][0]["id"]
    post(
        sim,
        "/_sim/changes/enroll",
        {"course_id": first, "section_id": section, "user_id": user_id},
        status=400,
    )
    assert log(sim) == []


def test_drop_emits_updated_events_once_and_hides_the_enrollment(sim: RunningSimulator) -> None:
    data = truth(sim)
    course = next(c for c in data["courses"] if c["workflow_state"] == "available")
    enrollment = active_student(data, course["id"])
    result = post(sim, "/_sim/changes/drop", {"enrollment_id": enrollment["id"], "state": "deleted"})
    assert [e["event_name"] for e in result["events"]] == ["enrollment_updated", "enrollment_state_updated"]
    again = post(sim, "/_sim/changes/drop", {"enrollment_id": enrollment["id"], "state": "deleted"})
    assert again["events"] == []  # nothing changed, nothing emitted

    token = sim.create_token()["access_token"]
    listed = get(sim, f"/api/v1/courses/{course['id']}/enrollments", token, per_page=100)
    assert enrollment["id"] not in {e["id"] for e in listed}
    after = next(e for e in truth(sim)["enrollments"] if e["id"] == enrollment["id"])
    assert after["enrollment_state"] == "deleted"
    updated, state = (entry["payload"]["body"] for entry in log(sim))
    assert (updated["enrollment_id"], updated["workflow_state"]) == (gid(enrollment["id"]), "deleted")
    assert updated["updated_at"] == after["updated_at"] > enrollment["updated_at"]
    assert (state["enrollment_id"], state["state"]) == (gid(enrollment["id"]), "deleted")


def test_move_is_a_new_enrollment_plus_deleting_the_old(sim: RunningSimulator) -> None:
    data = truth(sim)
    course_id, (section_a, section_b, *_) = course_with_two_sections(data)
    old = active_student(data, course_id, section_a)
    result = post(sim, "/_sim/changes/move", {"enrollment_id": old["id"], "section_id": section_b})
    assert [e["event_name"] for e in result["events"]] == [
        "enrollment_created",
        "enrollment_state_created",
        "enrollment_updated",
        "enrollment_state_updated",
    ]
    new_id = result["enrollment_id"]
    assert new_id != old["id"]
    payloads = [entry["payload"]["body"] for entry in log(sim)]
    assert payloads[0]["enrollment_id"] == gid(new_id)
    assert payloads[0]["course_section_id"] == gid(section_b)
    assert payloads[0]["user_id"] == gid(old["user_id"])
    assert (payloads[2]["enrollment_id"], payloads[2]["workflow_state"]) == (gid(old["id"]), "deleted")
    assert payloads[2]["course_section_id"] == gid(section_a)

    token = sim.create_token()["access_token"]
    listed = {e["id"]: e for e in get(sim, f"/api/v1/courses/{course_id}/enrollments", token, per_page=100)}
    assert old["id"] not in listed
    assert (listed[new_id]["course_section_id"], listed[new_id]["user_id"]) == (section_b, old["user_id"])


def test_rename_user_and_course(sim: RunningSimulator) -> None:
    data = truth(sim)
    course = next(c for c in data["courses"] if c["workflow_state"] == "available")
    user = data["users"][2]
    renamed = post(sim, "/_sim/changes/rename_user", {"user_id": user["id"], "last_name": "Renamed"})
    assert [e["event_name"] for e in renamed["events"]] == ["user_updated"]
    course_change = post(sim, "/_sim/changes/rename_course", {"course_id": course["id"], "name": "Algebra 2"})
    assert [e["event_name"] for e in course_change["events"]] == ["course_updated"]
    unchanged = post(sim, "/_sim/changes/rename_course", {"course_id": course["id"], "name": "Algebra 2"})
    assert unchanged["events"] == []

    user_body, course_event = log(sim)[0]["payload"]["body"], log(sim)[1]["payload"]
    assert (user_body["user_id"], user_body["name"]) == (gid(user["id"]), f"{user['first_name']} Renamed")
    body = course_event["body"]
    assert (body["course_id"], body["account_id"], body["uuid"]) == (
        gid(course["id"]),
        gid(course["account_id"]),
        course["uuid"],
    )
    assert (body["name"], body["workflow_state"]) == ("Algebra 2", "available")
    assert body["updated_at"] == course_change["updated_at"]
    token = sim.create_token()["access_token"]
    api_course = get(sim, f"/api/v1/accounts/1/courses/{course['id']}", token)
    assert api_course["name"] == "Algebra 2" or api_course.get("original_name") == "Algebra 2"
    after = truth(sim)
    assert next(u for u in after["users"] if u["id"] == user["id"])["last_name"] == "Renamed"
    assert after["updated_at"]["courses"][str(course["id"])] == course_change["updated_at"]


def test_crosslist_moves_section_and_enrollments(sim: RunningSimulator) -> None:
    data = truth(sim)
    course_id, (_, section_id, *_) = course_with_two_sections(data)
    target = next(
        c["id"] for c in data["courses"] if c["id"] != course_id and c["workflow_state"] == "available"
    )
    moved = {e["id"] for e in data["enrollments"] if e["course_section_id"] == section_id}
    result = post(sim, "/_sim/changes/crosslist", {"section_id": section_id, "target_course_id": target})
    assert [e["event_name"] for e in result["events"]] == ["course_section_updated"]
    assert set(result["moved_enrollment_ids"]) == moved

    event = log(sim)[0]["payload"]
    assert_tenant_fields(sim, event, data)
    metadata, body = event["metadata"], event["body"]
    assert (metadata["context_type"], metadata["context_id"]) == ("CourseSection", gid(section_id))
    # course_section_* bodies carry LOCAL ids (lib/canvas/live_events.rb get_course_section_data)
    assert (body["course_section_id"], body["course_id"], body["nonxlist_course_id"]) == (
        str(section_id),
        str(target),
        str(course_id),
    )
    token = sim.create_token()["access_token"]
    sections = get(sim, f"/api/v1/courses/{target}/sections", token, per_page=100)
    assert any(s["id"] == section_id and s["nonxlist_course_id"] == course_id for s in sections)
    after = truth(sim)
    assert {e["course_id"] for e in after["enrollments"] if e["id"] in moved} == {target}
    assert str(section_id) in after["updated_at"]["sections"]

    with_events = post(
        sim,
        "/_sim/changes/crosslist",
        {"section_id": section_id, "target_course_id": course_id, "enrollment_events": True},
    )
    names = Counter(e["event_name"] for e in with_events["events"])
    assert names == Counter({"course_section_updated": 1, "enrollment_updated": len(moved)})
    assert log(sim)[1]["payload"]["body"]["nonxlist_course_id"] is None  # back home: de-cross-listed


def test_updated_at_strictly_increases_with_a_frozen_clock(sim: RunningSimulator) -> None:
    sim.state.clock = lambda: 1_800_000_000.0  # every change happens "at the same instant"
    data = truth(sim)
    course_id = data["courses"][0]["id"]
    stamps = [
        post(sim, "/_sim/changes/rename_course", {"course_id": course_id, "name": f"Name {i}"})["updated_at"]
        for i in range(4)
    ]
    enrollment = active_student(data, course_id)
    for state in ("inactive", "completed", "deleted"):
        post(sim, "/_sim/changes/drop", {"enrollment_id": enrollment["id"], "state": state})
    entries = log(sim)
    assert stamps == sorted(stamps) and len(set(stamps)) == 4
    assert stamps[0].startswith("2027-01-15T08:00:00.")
    enrollment_stamps = [
        e["payload"]["body"]["updated_at"] for e in entries if e["event_name"] == "enrollment_updated"
    ]
    assert len(set(enrollment_stamps)) == 3 and enrollment_stamps == sorted(enrollment_stamps)
    times = [e["payload"]["metadata"]["event_time"] for e in entries]
    assert times == sorted(times) and len(set(times)) == len(times)


# ------------------------------------------------------------------------------------------ delivery
def test_sqs_delivery(sim: RunningSimulator, moto_endpoint: str) -> None:
    sqs = boto3.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    queue_url = sqs.create_queue(QueueName=f"canvas-live-events-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    post(sim, "/_sim/live_events", {"sqs_queue_url": queue_url, "aws_endpoint_url": moto_endpoint})
    data = truth(sim)
    user = {"first_name": "Sam", "last_name": "Queue"}
    result = post(
        sim, "/_sim/changes/enroll", {"course_id": data["courses"][0]["id"], "user": user}, status=201
    )
    post(sim, "/_sim/changes/rename_user", {"user_id": result["user_id"], "first_name": "Zed"})
    assert flush(sim)["drained"] is True

    received: list[dict[str, Any]] = []
    for _ in range(5):
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        received += [json.loads(m["Body"]) for m in messages.get("Messages", [])]
        if len(received) >= 4:
            break
    entries = log(sim)
    assert [e["delivered"] for e in entries] == [1, 1, 1, 1]
    key = lambda event: event["metadata"]["event_time"]  # noqa: E731
    assert sorted(received, key=key) == sorted((e["payload"] for e in entries), key=key)
    assert [event["metadata"]["event_name"] for event in sorted(received, key=key)] == [
        "user_created",
        "enrollment_created",
        "enrollment_state_created",
        "user_updated",
    ]


def test_http_delivery_in_canvas_then_caliper_format(sim: RunningSimulator, receiver: Receiver) -> None:
    post(sim, "/_sim/live_events", {"http_url": receiver.url})
    data = truth(sim)
    course = next(c for c in data["courses"] if c["workflow_state"] == "available")
    user_id = outsider(data, course["id"])
    post(sim, "/_sim/changes/enroll", {"course_id": course["id"], "user_id": user_id}, status=201)
    flush(sim)
    assert [ctype for ctype, _ in receiver.bodies] == ["application/json", "application/json"]
    assert receiver.json_bodies() == [e["payload"] for e in log(sim)]

    post(sim, "/_sim/live_events", {"format": "caliper"})
    result = post(sim, "/_sim/changes/rename_user", {"user_id": user_id, "first_name": "Quentin"})
    dropped = post(sim, "/_sim/changes/drop", {"enrollment_id": data["enrollments"][0]["id"]})
    flush(sim)
    entries = log(sim)
    renamed = entries[2]
    assert renamed["seq"] == result["events"][0]["seq"]
    assert (renamed["skipped"], renamed["delivered"], renamed["format"]) == (
        True,
        0,
        "canvas",
    )  # no Caliper form
    envelopes = receiver.json_bodies()[2:]
    assert len(envelopes) == 2 == len(dropped["events"])
    updated, state = (envelope["data"][0] for envelope in envelopes)
    assert envelopes[0]["dataVersion"] == "http://purl.imsglobal.org/ctx/caliper/v1p1"
    assert envelopes[0]["sensor"] == f"http://{urlsplit(sim.url).netloc}/"
    enrollment_id = gid(data["enrollments"][0]["id"])
    assert (updated["action"], updated["object"]["id"]) == (
        "Modified",
        f"urn:instructure:canvas:enrollment:{enrollment_id}",
    )
    extension = updated["object"]["extensions"]["com.instructure.canvas"]
    assert (extension["workflow_state"], extension["entity_id"]) == ("deleted", enrollment_id)
    actor = updated["actor"]["extensions"]["com.instructure.canvas"]
    assert actor["root_account_uuid"] == data["root_account"]["uuid"]
    assert state["object"]["extensions"]["com.instructure.canvas"]["state"] == "deleted"
    assert updated["id"].startswith("urn:uuid:") and updated["id"] != state["id"]


def test_http_delivery_retries_a_failing_endpoint(sim: RunningSimulator, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    post(sim, "/_sim/live_events", {"http_url": receiver.url, "retry_backoff_seconds": 0.01})
    post(
        sim, "/_sim/changes/rename_course", {"course_id": truth(sim)["courses"][0]["id"], "name": "Retry 101"}
    )
    flush(sim)
    (entry,) = log(sim)
    assert (entry["delivered"], entry["failed"], len(entry["errors"])) == (1, 0, 2)
    assert receiver.json_bodies() == [entry["payload"]]


def test_signed_delivery_verifies_against_the_jwks_and_survives_rotation(
    sim: RunningSimulator, receiver: Receiver
) -> None:
    post(sim, "/_sim/live_events", {"http_url": receiver.url, "signed": True})
    course_id = truth(sim)["courses"][0]["id"]
    post(sim, "/_sim/changes/rename_course", {"course_id": course_id, "name": "Signed 1"})
    flush(sim)
    ((content_type, token),) = receiver.bodies
    assert content_type == "application/jwt"
    jwks = get(sim, "/_sim/jwks.json")
    header, claims = verify_jws(token, jwks)
    assert header["typ"] == "JWT" and header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert all(k["kty"] == "RSA" and k["alg"] == "RS256" and k["use"] == "sig" for k in jwks["keys"])
    assert claims["exp"] > claims["iat"]
    assert {k: v for k, v in claims.items() if k not in JWT_CLAIMS} == log(sim)[0]["payload"]
    head, payload, signature = token.split(".")
    forged = json.loads(b64decode(payload))
    forged["body"]["name"] = "Forged"
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidSignature):
        verify_jws(f"{head}.{forged_payload}.{signature}", jwks)

    rotation = post(sim, "/_sim/live_events/rotate_key", {})
    assert rotation["previous_kid"] == header["kid"] != rotation["current_kid"]
    rotated_jwks = get(sim, "/_sim/jwks.json")
    kids = [k["kid"] for k in rotated_jwks["keys"]]
    assert header["kid"] in kids and rotation["current_kid"] in kids and rotation["next_kid"] in kids
    post(sim, "/_sim/changes/rename_course", {"course_id": course_id, "name": "Signed 2"})
    flush(sim)
    new_header, new_claims = verify_jws(receiver.bodies[1][1], rotated_jwks)
    assert new_header["kid"] == rotation["current_kid"]
    assert new_claims["body"]["name"] == "Signed 2"
    verify_jws(token, rotated_jwks)  # the old token still verifies: the previous key stays published


def run_chaos(seed: int, receiver: Receiver) -> tuple[list[dict[str, Any]], list[int]]:
    """12 course renames sent with loss, duplication and a reorder window of 4 -> (log, received seqs)."""
    with serve(SimulatorConfig(seed=11, courses=6)) as sim:
        settings = {"http_url": receiver.url, "seed": seed, "duplicate_rate": 0.3, "loss_rate": 0.25}
        post(sim, "/_sim/live_events", {**settings, "reorder_window": 4})
        course_id = truth(sim)["courses"][0]["id"]
        for index in range(12):
            post(sim, "/_sim/changes/rename_course", {"course_id": course_id, "name": f"Chaos {index}"})
        stats = get(sim, "/_sim/live_events")["stats"]
        flush(sim)
        entries = log(sim)
    seq_by_time = {e["payload"]["metadata"]["event_time"]: e["seq"] for e in entries}
    received = [seq_by_time[body["metadata"]["event_time"]] for body in receiver.json_bodies()]
    assert stats["buffered"] == sum(0 if e["lost"] else 1 + e["duplicated"] for e in entries) % 4
    receiver.bodies.clear()
    return entries, received


def test_loss_duplication_and_reordering_are_seeded(receiver: Receiver) -> None:
    entries, received = run_chaos(42, receiver)
    lost = [e["seq"] for e in entries if e["lost"]]
    doubled = [e["seq"] for e in entries if e["duplicated"]]
    assert lost and doubled, "seed 42 should lose and duplicate some of the 12 events"
    staged = [e["seq"] for e in entries for _ in range(0 if e["lost"] else 1 + e["duplicated"])]
    assert Counter(received) == Counter(staged)  # exactly the expected multiset
    assert {e["seq"]: e["delivered"] for e in entries} == {e["seq"]: staged.count(e["seq"]) for e in entries}
    assert received != staged  # reordered ...
    for start in range(0, len(staged), 4):  # ... but only within each window of 4
        assert sorted(received[start : start + 4]) == sorted(staged[start : start + 4])

    again_entries, again_received = run_chaos(42, receiver)
    assert again_received == received
    assert [(e["lost"], e["duplicated"]) for e in again_entries] == [
        (e["lost"], e["duplicated"]) for e in entries
    ]
    _, other_received = run_chaos(7, receiver)
    assert other_received != received


# ------------------------------------------------------------------------------------------ settings
def test_live_event_settings_are_validated_all_or_nothing(sim: RunningSimulator) -> None:
    before = get(sim, "/_sim/live_events")
    assert {k: before[k] for k in ("format", "signed", "duplicate_rate", "loss_rate", "reorder_window")} == {
        "format": "canvas",
        "signed": False,
        "duplicate_rate": 0.0,
        "loss_rate": 0.0,
        "reorder_window": 0,
    }
    for body in (
        {"format": "xml"},
        {"loss_rate": 1.5},
        {"reorder_window": -1},
        {"http_url": "x", "bogus": 1},
    ):
        response = requests.post(f"{sim.url}/_sim/live_events", json=body, timeout=TIMEOUT)
        assert response.status_code == 400, body
    assert get(sim, "/_sim/live_events") == before


def test_cli_flags_configure_live_events() -> None:
    args = parse_args(
        ["--live-events-http-url", "http://127.0.0.1:9/x", "--live-events-format", "caliper",
         "--live-events-signed", "--live-events-loss-rate", "0.5", "--live-events-reorder-window", "3",
         "--live-events-seed", "9", "--live-events-sqs-queue-url", "http://q/canvas-live-events"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.live_events_http_url, config.live_events_format, config.live_events_signed) == (
        "http://127.0.0.1:9/x",
        "caliper",
        True,
    )
    assert (config.live_events_loss_rate, config.live_events_reorder_window, config.live_events_seed) == (
        0.5,
        3,
        9,
    )
    assert config.live_events_sqs_queue_url == "http://q/canvas-live-events"
    assert config_from_args(parse_args([])).live_events_format == "canvas"
