"""Live events end to end: the simulator changes Canvas and emits events to the stack's queue; the
LiveEvents function re-reads the course; DynamoDB follows within seconds, whatever the delivery order."""

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rostersync.events.parse import parse_event
from rostersync.models import RosterEnrollment
from rostersync_local.truth import differences, expected_export
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live_tenant(stack: Stack) -> str:
    tenant_id = stack.connect_tenant()
    stack.cli_ok("sync", "run", "--tenant", tenant_id, "--wait", "--force")
    stack.canvas(
        "POST",
        "/_sim/live_events",
        json={
            "sqs_queue_url": stack.outputs["LiveEventsQueueUrl"],
            "aws_endpoint_url": stack.aws_endpoint_url,
        },
    )
    return tenant_id


def stored_enrollment(
    stack: Stack, tenant_id: str, course_id: int, enrollment_id: int
) -> RosterEnrollment | None:
    item = (
        stack.aws("dynamodb")
        .get_item(
            TableName=stack.outputs["RosterTableName"],
            Key={"pk": {"S": f"T#{tenant_id}#C#{course_id}"}, "sk": {"S": f"ENROLLMENT#{enrollment_id}"}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return RosterEnrollment.model_validate_json(item["data"]["S"]) if item else None


def eventually(check: Callable[[], bool], seconds: float = 30) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"not reached within {seconds} s")


def a_course(stack: Stack) -> dict[str, Any]:
    truth = stack.canvas("GET", "/_sim/ground_truth")
    course: dict[str, Any] = next(
        c for c in truth["courses"] if c["workflow_state"] == "available" and c["id"] > 101
    )
    course["section_ids"] = [s["id"] for s in truth["sections"] if s["course_id"] == course["id"]]
    return course


def test_an_added_then_dropped_student_reaches_dynamodb_within_seconds(
    stack: Stack, live_tenant: str
) -> None:
    course = a_course(stack)
    added = stack.canvas(
        "POST",
        "/_sim/changes/enroll",
        json={
            "course_id": course["id"],
            "user": {"first_name": "Ada", "last_name": "Live", "sis_user_id": "live-ada"},
        },
    )
    enrollment_id = added["enrollment_id"]
    eventually(
        lambda: (
            (e := stored_enrollment(stack, live_tenant, course["id"], enrollment_id)) is not None and e.active
        )
    )
    stack.canvas("POST", "/_sim/changes/drop", json={"enrollment_id": enrollment_id, "state": "deleted"})
    eventually(lambda: not stored_enrollment(stack, live_tenant, course["id"], enrollment_id).active)  # type: ignore[union-attr]


def test_a_moved_student_follows_to_the_new_section(stack: Stack, live_tenant: str) -> None:
    truth = stack.canvas("GET", "/_sim/ground_truth")
    sections_by_course: dict[int, list[int]] = {}
    for section in truth["sections"]:
        sections_by_course.setdefault(section["course_id"], []).append(section["id"])
    available = {c["id"] for c in truth["courses"] if c["workflow_state"] == "available"}
    enrollment = next(
        e
        for e in truth["enrollments"]
        if e["course_id"] in available
        and len(sections_by_course.get(e["course_id"], [])) > 1
        and e["type"] == "StudentEnrollment"
        and e["enrollment_state"] == "active"
    )
    target = next(
        s for s in sections_by_course[enrollment["course_id"]] if s != enrollment["course_section_id"]
    )
    moved = stack.canvas(
        "POST", "/_sim/changes/move", json={"enrollment_id": enrollment["id"], "section_id": target}
    )

    def followed() -> bool:
        new = stored_enrollment(stack, live_tenant, enrollment["course_id"], moved["enrollment_id"])
        old = stored_enrollment(stack, live_tenant, enrollment["course_id"], enrollment["id"])
        return bool(new and new.active and new.section_id == target and old and not old.active)

    eventually(followed)


def test_a_duplicated_and_shuffled_stream_ends_equal_to_canvas(stack: Stack, live_tenant: str) -> None:
    course = a_course(stack)
    before = stack.canvas("GET", "/_sim/live_events/log")  # other tests' changes, sent or not
    since = before[-1]["seq"] if before else 0
    stack.canvas("POST", "/_sim/live_events", json={"duplicate_rate": 0.5, "reorder_window": 4, "seed": 3})
    try:
        enrolled = [
            stack.canvas(
                "POST",
                "/_sim/changes/enroll",
                json={
                    "course_id": course["id"],
                    "user": {
                        "first_name": f"Shuffled{n}",
                        "last_name": "Student",
                        "sis_user_id": f"shuffle-{n}",
                    },
                },
            )["enrollment_id"]
            for n in range(4)
        ]
        for enrollment_id in enrolled[:2]:
            stack.canvas(
                "POST", "/_sim/changes/drop", json={"enrollment_id": enrollment_id, "state": "inactive"}
            )
        stack.canvas("POST", "/_sim/live_events/flush", json={"timeout_seconds": 30})
    finally:
        stack.canvas("POST", "/_sim/live_events", json={"duplicate_rate": 0.0, "reorder_window": 0})
    log = stack.canvas("GET", f"/_sim/live_events/log?since={since}")
    assert sum(entry["delivered"] for entry in log) > len(log) - sum(
        entry["lost"] for entry in log
    )  # duplicates sent
    expected = expected_export(stack.canvas("GET", "/_sim/ground_truth"))

    wanted = {course["id"]: expected[course["id"]]}
    in_canvas = {e["canvas_id"] for e in wanted[course["id"]]["enrollments"]}
    found: list[str] = []

    def matches() -> bool:
        exported = next(c for c in stack.export(live_tenant)["courses"] if c["canvas_id"] == course["id"])
        # Enrollments deleted in Canvas stay in the export inactive (soft drops); the truth omits them.
        exported["enrollments"] = [
            e for e in exported["enrollments"] if e["canvas_id"] in in_canvas or e["active"]
        ]
        enrolled = {e["user_id"] for e in exported["enrollments"]}
        exported["users"] = [user for user in exported["users"] if user["canvas_id"] in enrolled]
        found[:] = differences({"courses": [exported]}, wanted)
        return not found

    try:
        eventually(matches, seconds=45)
    except AssertionError:
        raise AssertionError(f"export differs from Canvas: {found}") from None


def _forged_token(kid: str, payload: dict[str, Any]) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    signing_input = f"{header}.{part(json.dumps(payload).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{part(signature)}"


def enroll_new_student(stack: Stack, course_id: int, name: str) -> int:
    added = stack.canvas(
        "POST",
        "/_sim/changes/enroll",
        json={"course_id": course_id, "user": {"first_name": name, "last_name": "Live", "sis_user_id": name}},
    )
    enrollment_id: int = added["enrollment_id"]
    return enrollment_id


def test_a_forged_signed_event_is_refused_and_a_plain_one_queued(stack: Stack, live_tenant: str) -> None:
    # An event of its own change (not whatever another test left last in the log).
    before = stack.canvas("GET", "/_sim/live_events/log")
    since = before[-1]["seq"] if before else 0
    enroll_new_student(stack, a_course(stack)["id"], "forgery-base")
    genuine = stack.canvas("GET", f"/_sim/live_events/log?since={since}")[0]["payload"]
    kid = stack.canvas("GET", "/_sim/jwks.json")["keys"][0]["kid"]
    forged = requests.post(
        f"{stack.api_url}/live-events",
        data=_forged_token(kid, genuine),
        headers={"Content-Type": "application/jwt"},
        timeout=30,
    )
    assert forged.status_code == 401 and forged.json()["reason"] == "bad_signature"
    garbage = requests.post(f"{stack.api_url}/live-events", data="{not json", timeout=30)
    assert garbage.status_code == 400
    plain = requests.post(f"{stack.api_url}/live-events", json=genuine, timeout=30)
    assert plain.status_code == 202 and plain.json()["status"] == "queued"


def test_a_renamed_user_is_renamed_on_every_roster_they_are_on(stack: Stack, live_tenant: str) -> None:
    truth = stack.canvas("GET", "/_sim/ground_truth")
    available = {c["id"] for c in truth["courses"] if c["workflow_state"] == "available"}
    courses_of: dict[int, set[int]] = {}
    for e in truth["enrollments"]:
        if (
            e["course_id"] in available
            and e["type"] == "StudentEnrollment"
            and e["enrollment_state"] == "active"
        ):
            courses_of.setdefault(e["user_id"], set()).add(e["course_id"])
    # The fewest courses that still prove "every roster": each one is re-read by every tenant on this Canvas.
    user_id, courses = min(
        ((user, found) for user, found in courses_of.items() if len(found) > 1), key=lambda pair: len(pair[1])
    )
    stack.canvas("POST", "/_sim/changes/rename_user", json={"user_id": user_id, "last_name": "Renamed"})

    def renamed_everywhere() -> bool:
        names = {
            user["name"]
            for course in stack.export(live_tenant)["courses"]
            if course["canvas_id"] in courses
            for user in course["users"]
            if user["canvas_id"] == user_id
        }
        return bool(names) and all(name.endswith(" Renamed") for name in names)

    # Every tenant the suite connected to this one Canvas re-reads the user's courses: give them time.
    eventually(renamed_everywhere, seconds=90)


def test_events_signed_by_canvas_reach_dynamodb_over_https_across_a_key_rotation(
    stack: Stack, live_tenant: str
) -> None:
    """The HTTPS path alone (SQS delivery off): the intake verifies each token against the simulator's
    JWKS, queues it, and the consumer verifies it again before re-reading the course."""
    course = a_course(stack)
    stack.canvas(
        "POST",
        "/_sim/live_events",
        json={"sqs_queue_url": None, "http_url": f"{stack.api_url}/live-events", "signed": True},
    )
    try:
        before_rotation = enroll_new_student(stack, course["id"], "signed-before")
        # Canvas's monthly rotation: the "next" key of the JWKS becomes the signing one.
        stack.canvas("POST", "/_sim/live_events/rotate_key")
        after_rotation = enroll_new_student(stack, course["id"], "signed-after")
        eventually(
            lambda: all(
                stored_enrollment(stack, live_tenant, course["id"], enrollment_id) is not None
                for enrollment_id in (before_rotation, after_rotation)
            )
        )
    finally:
        stack.canvas(
            "POST",
            "/_sim/live_events",
            json={"sqs_queue_url": stack.outputs["LiveEventsQueueUrl"], "http_url": None, "signed": False},
        )
    log = stack.canvas("GET", "/_sim/live_events/log")
    sent = [entry for entry in log if entry["event_name"] == "enrollment_created"][-2:]
    assert all(entry["delivered"] >= 1 and not entry["errors"] for entry in sent), sent


def test_what_became_of_each_event_is_kept_and_a_replay_reports_it(
    stack: Stack, live_tenant: str, tmp_path: Path
) -> None:
    before = stack.canvas("GET", "/_sim/live_events/log")
    since = before[-1]["seq"] if before else 0
    enroll_new_student(stack, a_course(stack)["id"], "recorded-outcome")
    log = stack.canvas("GET", f"/_sim/live_events/log?since={since}")
    emitted = next(entry["payload"] for entry in log if entry["event_name"] == "enrollment_created")

    parsed = parse_event(emitted).event
    assert parsed is not None

    def recorded() -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = json.loads(
            stack.cli_ok("events", "recent", "--tenant", live_tenant, "--format", "json")
        )
        return [r for r in records if r["dedupe_key"] == parsed.dedupe_key and r["outcome"] == "applied"]

    eventually(lambda: bool(recorded()), seconds=90)
    shown = requests.get(
        f"{stack.api_url}/admin/tenant",
        headers={"Authorization": f"Bearer {stack.cli_ok('admin', 'token', '--tenant', live_tenant)}"},
        timeout=30,
    ).json()["last_live_event"]
    assert shown is not None and shown["outcome"] in {"applied", "ignored", "deferred"}

    # The operator replays the same event: the stack applies it once, and the replay says so.
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(emitted))
    replayed = stack.cli("events", "replay", str(event_file), "--tenant", live_tenant)
    assert replayed.returncode == 0, replayed.stderr
    assert "applied (seen before: not applied again)" in replayed.stderr
    assert json.loads(replayed.stdout)["event_name"] == "enrollment_created"


def test_events_for_a_tenant_awaiting_authorization_say_why_they_did_not_apply(stack: Stack) -> None:
    tenant_id = stack.connect_tenant()
    stack.cli_ok("sync", "run", "--tenant", tenant_id, "--wait", "--force")
    client_id = stack.cli_ok("tenant", "show", tenant_id)
    requests.post(
        f"{stack.canvas_url}/_sim/tokens/revoke",
        json={"client_id": json.loads(client_id)["client_id"]},
        timeout=30,
    )
    stack.cli("sync", "run", "--tenant", tenant_id, "--wait", "--force")  # learns the grant is gone
    assert json.loads(stack.cli_ok("tenant", "show", tenant_id))["status"] == "needs_reauthorization"
    before = stack.canvas("GET", "/_sim/live_events/log")
    since = before[-1]["seq"] if before else 0
    enroll_new_student(stack, a_course(stack)["id"], "while-disconnected")
    log = stack.canvas("GET", f"/_sim/live_events/log?since={since}")
    emitted = next(entry["payload"] for entry in log if entry["event_name"] == "enrollment_created")
    event_file = Path(stack.state_dir) / "disconnected-event.json"
    event_file.write_text(json.dumps(emitted))
    replayed = stack.cli("events", "replay", str(event_file), "--tenant", tenant_id)
    assert replayed.returncode == 1 and "authorized" in replayed.stderr
    records = json.loads(stack.cli_ok("events", "recent", "--tenant", tenant_id, "--format", "json"))
    assert any(
        r["outcome"] == "tenant_not_connected" and "needs_reauthorization" in r["reason"] for r in records
    )
