"""The whole flow over HTTP: CLI -> OAuth through the simulator -> schedule/queues -> DynamoDB -> export."""

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests

from rostersync_local.truth import differences, expected_export
from tests.integration.conftest import Stack, calls_outside_the_manifest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def email_tenant(stack: Stack) -> str:
    return stack.connect_tenant("--user-id-field", "email")


def test_connecting_records_the_root_account_and_keeps_tokens_out_of_dynamodb(
    stack: Stack, email_tenant: str
) -> None:
    tenant = json.loads(stack.cli_ok("tenant", "show", email_tenant))
    truth = stack.canvas("GET", "/_sim/ground_truth")
    assert tenant["status"] == "active"
    assert (tenant["root_account_id"], tenant["root_account_uuid"]) == (
        truth["root_account"]["id"],
        truth["root_account"]["uuid"],
    )
    secret = stack.tenant_secret(email_tenant)
    assert secret["access_token"] and secret["refresh_token"] and secret["client_secret"]
    items = stack.aws("dynamodb").scan(TableName=stack.outputs["RosterTableName"])["Items"]
    dumped = json.dumps(items)
    assert all(secret[name] not in dumped for name in ("access_token", "refresh_token", "client_secret"))


def test_full_sync_exports_the_canvas_ground_truth(stack: Stack, email_tenant: str) -> None:
    before = stack.canvas("GET", "/_sim/stats")["by_route"]
    summary = json.loads(stack.cli_ok("sync", "run", "--tenant", email_tenant, "--wait"))
    assert summary["run"]["status"] == "completed" and summary["courses_failed"] == 0
    truth = stack.canvas("GET", "/_sim/ground_truth")
    expected = expected_export(truth, user_id_field="email")
    export = stack.export(email_tenant)
    assert export["tenant"] == email_tenant
    assert len(export["courses"]) == len(expected) > 0
    assert differences(export, expected) == []
    # The export holds inactive and completed enrollments too, marked inactive.
    states = {(e["state"], e["active"]) for course in export["courses"] for e in course["enrollments"]}
    assert ("active", True) in states and ("inactive", False) in states
    after = stack.canvas("GET", "/_sim/stats")["by_route"]
    enrollment_pages = after.get("GET /api/v1/courses/:course_id/enrollments", 0) - before.get(
        "GET /api/v1/courses/:course_id/enrollments", 0
    )
    assert enrollment_pages >= len(expected)


def test_resync_of_an_unchanged_canvas_writes_nothing(stack: Stack, email_tenant: str) -> None:
    stack.cli_ok("sync", "run", "--tenant", email_tenant, "--wait", "--force")
    summary = json.loads(stack.cli_ok("sync", "run", "--tenant", email_tenant, "--wait", "--force"))
    assert (
        summary["changes"]["created"] == summary["changes"]["updated"] == summary["changes"]["dropped"] == 0
    )
    assert summary["changes"]["unchanged"] > 0


def test_a_tenant_without_emails_skips_the_users_listing(stack: Stack) -> None:
    tenant_id = stack.connect_tenant("--user-id-field", "sis_user_id")
    users_route = "GET /api/v1/courses/:course_id/users"
    before = stack.canvas("GET", "/_sim/stats")["by_route"].get(users_route, 0)
    stack.cli_ok("sync", "run", "--tenant", tenant_id, "--wait")
    assert stack.canvas("GET", "/_sim/stats")["by_route"].get(users_route, 0) == before
    expected = expected_export(stack.canvas("GET", "/_sim/ground_truth"), user_id_field="sis_user_id")
    assert differences(stack.export(tenant_id), expected) == []


def test_the_scheduled_sync_covers_every_connected_tenant(stack: Stack, email_tenant: str) -> None:
    fired = json.loads(stack.cli_ok("local", "fire"))
    requested = {request["tenant_id"] for request in fired["result"]["requested"]}
    assert email_tenant in requested
    pending = stack.add_tenant(name="Not yet authorized")
    assert pending not in {
        r["tenant_id"] for r in json.loads(stack.cli_ok("local", "fire"))["result"]["requested"]
    }


def test_every_canvas_call_made_so_far_is_in_the_scope_manifest(stack: Stack, email_tenant: str) -> None:
    assert stack.canvas("GET", "/_sim/stats")["by_route"]
    assert calls_outside_the_manifest(stack.canvas_url) == []


def test_no_secret_reaches_a_log_line(stack: Stack, email_tenant: str) -> None:
    secret = stack.tenant_secret(email_tenant)
    logs = "".join(path.read_text(errors="replace") for path in Path(stack.state_dir, "logs").glob("*.log"))
    assert "CourseSyncWorkerFunction" in {path.stem for path in Path(stack.state_dir, "logs").glob("*.log")}
    for name in ("access_token", "refresh_token", "client_secret"):
        assert secret[name] not in logs, name


# -- bad input -------------------------------------------------------------------------------------
def test_unknown_tenant_is_a_clear_cli_error(stack: Stack) -> None:
    completed = stack.cli("sync", "run", "--tenant", "tnope", "--wait")
    assert completed.returncode == 1 and "unknown tenant 'tnope'" in completed.stderr


def test_a_tenant_that_never_authorized_cannot_sync(stack: Stack) -> None:
    tenant_id = stack.add_tenant(name="Pending")
    completed = stack.cli("sync", "run", "--tenant", tenant_id)
    assert completed.returncode == 1 and "pending_authorization" in completed.stderr


@pytest.mark.parametrize("query", ["", "?code=abc", "?code=abc&state=tnope.forged", "?state=no-dot"])
def test_callbacks_without_a_live_state_are_refused(stack: Stack, query: str) -> None:
    response = requests.get(f"{stack.api_url}/oauth/callback{query}", timeout=30)
    assert response.status_code == 400
    assert "start again" in response.text


def test_a_declined_authorization_changes_nothing_and_its_link_is_spent(stack: Stack) -> None:
    tenant_id = stack.add_tenant(name="Declines")
    browser = requests.Session()  # the callback must come back to the browser that opened the link
    start = browser.get(stack.cli_ok("tenant", "authorize", tenant_id), allow_redirects=False, timeout=30)
    assert start.status_code == 302 and start.headers["Location"].startswith(
        f"{stack.canvas_url}/login/oauth2/auth?"
    )
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    callback = f"{stack.api_url}/oauth/callback"
    declined = browser.get(callback, params={"error": "access_denied", "state": state}, timeout=30)
    assert declined.status_code == 400 and "declined" in declined.text
    assert json.loads(stack.cli_ok("tenant", "show", tenant_id))["status"] == "pending_authorization"
    replayed = browser.get(callback, params={"code": "x", "state": state}, timeout=30)
    assert replayed.status_code == 400 and "already used" in replayed.text


def test_a_course_canvas_keeps_failing_is_recorded_and_its_roster_left_as_it_was(stack: Stack) -> None:
    tenant_id = stack.connect_tenant()
    stack.cli_ok("sync", "run", "--tenant", tenant_id, "--wait")
    before = {course["canvas_id"]: course for course in stack.export(tenant_id)["courses"]}
    victim = min(before)
    stack.canvas(
        "POST",
        "/_sim/faults",
        json={"status": 500, "path_regex": f"/api/v1/courses/{victim}/enrollments", "count": 1000},
    )
    try:
        completed = stack.cli("sync", "run", "--tenant", tenant_id, "--wait", "--force")
    finally:
        stack.canvas("DELETE", "/_sim/faults")
    assert completed.returncode == 1 and "finished with failed or held courses" in completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["courses_failed"] == 1 and summary["courses_succeeded"] == len(before) - 1
    status = json.loads(
        stack.cli_ok("sync", "status", "--tenant", tenant_id, "--run", summary["run"]["run_id"])
    )
    assert status[0]["run"]["status"] == "completed"
    after = {course["canvas_id"]: course for course in stack.export(tenant_id)["courses"]}
    assert after[victim] == before[victim]
    errors = json.loads(
        stack.cli_ok("sync", "errors", "--tenant", tenant_id, "--run", summary["run"]["run_id"])
    )
    course_errors = [(e["course_id"], e["code"]) for e in errors if e["user_id"] is None]
    assert course_errors == [(victim, "canvas_unavailable")]
    assert {e["code"] for e in errors if e["user_id"] is not None} <= {
        "missing_identifier",
        "duplicate_identifier",
    }


def test_settings_sync_list_and_errors_through_the_cli(stack: Stack, tmp_path: Path) -> None:
    tenant_id = stack.connect_tenant()  # role names and accounts are checked against its Canvas
    settings = json.loads(
        stack.cli_ok(
            "tenant",
            "configure",
            tenant_id,
            "--role",
            "Lab Student=excluded",
            "--mass-drop-threshold",
            "0.3",
            "--user-id-field",
            "login_id",
            "--include-unpublished",
        )
    )
    assert settings["role_overrides"] == {"Lab Student": "excluded"}
    assert (settings["mass_drop_threshold"], settings["user_id_field"]) == (0.3, "login_id")
    assert settings["courses"]["published_only"] is False
    bad = stack.cli("tenant", "configure", tenant_id, "--mass-drop-threshold", "2")
    assert bad.returncode == 1 and "mass_drop_threshold" in bad.stderr
    misspelled = stack.cli("tenant", "configure", tenant_id, "--role", "Lab Studnet=excluded")
    assert misspelled.returncode == 1
    assert "'Lab Studnet' is not a course role" in misspelled.stderr and "'Lab Student'" in misspelled.stderr
    unknown = stack.cli("tenant", "configure", tenant_id, "--account-id", "99")
    assert unknown.returncode == 1 and "account 99 is not in this Canvas" in unknown.stderr
    named = stack.cli("tenant", "configure", tenant_id, "--account-id", "School of Medicine")
    assert named.returncode == 2 and "is not an account number" in named.stderr
    unchanged = json.loads(stack.cli_ok("tenant", "show", tenant_id))["settings"]
    assert unchanged["role_overrides"] == {"Lab Student": "excluded"}
    assert unchanged["courses"]["account_id"] is None
    sub_account = json.loads(stack.cli_ok("tenant", "configure", tenant_id, "--account-id", "2"))
    assert sub_account["courses"]["account_id"] == 2
    pending = stack.add_tenant(name="Not connected")
    unchecked = stack.cli("tenant", "configure", pending, "--role", "Lab Student=excluded")
    assert unchecked.returncode == 1 and "connect the tenant to Canvas first" in unchecked.stderr
    listing = tmp_path / "courses.csv"
    listing.write_text("course_id\n101\nsis_course_id:MED-101\n")
    stack.cli_ok("courses", "import", "--tenant", tenant_id, "--mode", "add", str(listing))
    listing.write_text("course_id\n102\n")
    refused = stack.cli("courses", "import", "--tenant", tenant_id, "--mode", "replace", str(listing))
    assert refused.returncode == 1 and "add --yes to proceed" in refused.stderr
    stack.cli_ok("courses", "import", "--tenant", tenant_id, "--mode", "replace", "--yes", str(listing))
    assert stack.cli_ok("courses", "list", "--tenant", tenant_id).splitlines() == ["102"]
    listing.write_text("course_id\nnot-a-course\n")
    invalid = stack.cli("courses", "import", "--tenant", tenant_id, "--mode", "add", str(listing))
    assert invalid.returncode == 1 and "line 2" in invalid.stderr
    assert stack.cli_ok("sync", "errors", "--tenant", tenant_id, "--format", "csv").splitlines() == [
        "run_id,course_id,user_id,code,message,recorded_at"
    ]
    assert json.loads(stack.cli_ok("holds", "list", "--tenant", tenant_id, "--format", "json")) == []


def test_a_new_daily_schedule_shows_its_next_run_at_once_and_a_bad_time_is_explained(stack: Stack) -> None:
    tenant_id = stack.add_tenant(name="Daily")
    bad = stack.cli("tenant", "configure", tenant_id, "--daily-at", "6:30pm")
    assert bad.returncode == 1 and "HH:MM, 24-hour" in bad.stderr and "pattern" not in bad.stderr
    before = datetime.now(UTC)
    configured = stack.cli(
        "tenant", "configure", tenant_id, "--daily-at", "06:30", "--timezone", "Asia/Tokyo"
    )
    assert configured.returncode == 0 and "next scheduled full sync: " in configured.stderr
    next_sync_at = json.loads(stack.cli_ok("tenant", "show", tenant_id))["next_sync_at"]
    assert next_sync_at is not None
    when = datetime.fromisoformat(next_sync_at)
    assert before < when <= before + timedelta(days=1)
    assert f"{when.astimezone(ZoneInfo('Asia/Tokyo')):%H:%M}" == "06:30"


def test_canvas_ids_are_looked_up_not_guessed(stack: Stack) -> None:
    tenant_id = stack.connect_tenant()
    truth = stack.canvas("GET", "/_sim/ground_truth")
    root = json.loads(stack.cli_ok("tenant", "show", tenant_id))["root_account_id"]
    accounts = json.loads(stack.cli_ok("canvas", "accounts", "--tenant", tenant_id, "--format", "json"))
    assert root in [account["id"] for account in accounts]
    roles = json.loads(stack.cli_ok("canvas", "roles", "--tenant", tenant_id, "--format", "json"))
    course_roles = {role["role"] for role in truth["roles"] if not role.get("is_account_role")}
    assert roles and {role["role"] for role in roles} <= course_roles
    assert not any(role["is_account_role"] for role in roles)
    table = stack.cli_ok("canvas", "roles", "--tenant", tenant_id)
    assert table.splitlines()[0].startswith("ROLE (name for --role)")
    assert all(role["role"] in table for role in roles)
    terms = json.loads(stack.cli_ok("canvas", "terms", "--tenant", tenant_id, "--format", "json"))
    listed = Counter(
        course["enrollment_term_id"] for course in truth["courses"] if course["workflow_state"] != "deleted"
    )
    assert {term["id"]: term["courses"] for term in terms} == {
        term_id: count for term_id, count in listed.items() if term_id is not None
    }
    assert "not among rostersync's scopes" in stack.cli_ok("canvas", "terms", "--help")
    unconnected = stack.cli("canvas", "roles", "--tenant", stack.add_tenant(name="Not yet"))
    assert unconnected.returncode == 1 and "connect the tenant to Canvas first" in unconnected.stderr


def test_sync_now_has_a_cooldown_per_scope_and_can_target_one_course(stack: Stack) -> None:
    tenant_id = stack.connect_tenant()
    stack.cli_ok("sync", "run", "--tenant", tenant_id)
    again = stack.cli("sync", "run", "--tenant", tenant_id)
    assert again.returncode == 1 and "next is allowed at" in again.stderr and "add --force" in again.stderr
    truth = stack.canvas("GET", "/_sim/ground_truth")
    course_id = min(course["id"] for course in truth["courses"] if course["workflow_state"] == "available")
    summary = json.loads(
        stack.cli_ok("sync", "run", "--tenant", tenant_id, "--course", str(course_id), "--wait")
    )
    assert summary["run"]["courses_total"] == 1 and summary["courses_succeeded"] == 1
    assert summary["run"]["finished_at"] is not None
    # One name, one meaning: the run row counts the planner's requests, the summary the whole run's.
    history = json.loads(stack.cli_ok("sync", "history", "--tenant", tenant_id, "--format", "json"))
    newest = history[0]
    assert newest["run"]["run_id"] == summary["run"]["run_id"] and "canvas_requests" not in newest["run"]
    assert newest["canvas_requests"] > newest["run"]["planning_canvas_requests"] > 0
    table = stack.cli_ok("sync", "history", "--tenant", tenant_id).splitlines()
    assert table[0].startswith("RUN") and summary["run"]["run_id"] in table[1]
    assert len(table) == len(history) + 1
    assert "no sync runs yet" in stack.cli_ok("sync", "history", "--tenant", stack.add_tenant(name="New"))


def test_a_poison_message_reaches_the_dead_letter_queue_and_can_be_moved_back(stack: Stack) -> None:
    sqs = stack.aws("sqs")
    sqs.send_message(QueueUrl=stack.outputs["CourseSyncQueueUrl"], MessageBody="not a course message")
    poison = json.dumps({"tenant_id": "t-poison", "run_id": "r-poison", "course": {"id": 4242}})
    sqs.send_message(QueueUrl=stack.outputs["CourseSyncQueueUrl"], MessageBody=poison)
    # A grades message that failed for good (placed directly: the grades queue's own failures are slow).
    sqs.send_message(
        QueueUrl=stack.outputs["GradesDeadLetterQueueUrl"],
        MessageBody=json.dumps({"tenant_id": "t-grades", "batch_id": "b-lost"}),
    )
    deadline = time.monotonic() + 60
    letters: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(letters) < 2:
        queues = json.loads(stack.cli_ok("dlq", "list", "--format", "json"))
        listed = {entry["queue"]: entry for entry in queues}
        letters = {
            letter["body"]: letter
            for letter in listed["courses"]["letters"]
            if letter["body"] in {"not a course message", poison}
        }
        time.sleep(1)
    # Every dead-letter queue, with its count, without naming one.
    assert set(listed) == {"events", "requests", "courses", "grades"}
    assert listed["courses"]["messages"] >= 2 and listed["grades"]["messages"] >= 1
    assert int(letters["not a course message"]["receive_count"]) >= 3  # the template's maxReceiveCount
    assert letters["not a course message"]["tenant_id"] is None
    named = letters[poison]
    assert (named["tenant_id"], named["run_id"], named["course_id"]) == ("t-poison", "r-poison", 4242)
    [grade_letter] = [letter for letter in listed["grades"]["letters"] if letter["batch_id"] == "b-lost"]
    assert grade_letter["tenant_id"] == "t-grades"
    table = stack.cli_ok("dlq", "list")
    assert "t-poison" in table and "4242" in table
    assert "courses: the error is not kept by SQS: see logs/CourseSyncWorkerFunction.log" in table

    stack.cli_ok("dlq", "delete", named["message_id"], "--queue", "courses")
    again = stack.cli("dlq", "delete", named["message_id"], "--queue", "courses")
    assert again.returncode == 1 and "no message" in again.stderr
    remaining = json.loads(stack.cli_ok("dlq", "list", "--queue", "courses", "--format", "json"))
    assert [entry["queue"] for entry in remaining] == ["courses"]
    assert poison not in [letter["body"] for letter in remaining[0]["letters"]]

    moved = stack.cli_ok("dlq", "redrive", "--queue", "courses")
    assert moved.startswith("moved ") and int(moved.split()[1]) >= 1
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.outputs["CourseSyncDeadLetterQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"

    unconfirmed = stack.cli("dlq", "purge", "--queue", "grades")
    assert unconfirmed.returncode == 1 and "add --yes" in unconfirmed.stderr
    assert stack.cli_ok("dlq", "purge", "--queue", "grades", "--yes").startswith("purged ")
    after = json.loads(stack.cli_ok("dlq", "list", "--queue", "grades", "--format", "json"))
    assert after[0]["messages"] == 0 and after[0]["letters"] == []


def test_grades_pushed_with_the_cli_reach_canvas_through_the_grades_queue(
    stack: Stack, tmp_path: Path
) -> None:
    tenant_id = stack.connect_tenant()
    stack.cli_ok("sync", "run", "--tenant", tenant_id, "--wait", "--force")
    course = max(stack.export(tenant_id)["courses"], key=lambda c: len(c["enrollments"]))
    student_ids = {
        e["user_id"] for e in course["enrollments"] if e["type"] == "StudentEnrollment" and e["active"]
    }
    students = [u["sis_user_id"] for u in course["users"] if u["canvas_id"] in student_ids][:3]
    grades = tmp_path / "grades.csv"
    grades.write_text(
        "student,score\n" + "".join(f"{student},{80 + n}\n" for n, student in enumerate(students))
    )
    course_id = str(course["canvas_id"])
    pushed = stack.cli_ok(
        "grades",
        "push",
        "--tenant",
        tenant_id,
        "--course",
        course_id,
        "--assignment",
        "Midterm",
        "--csv",
        str(grades),
    )
    batch_id = pushed.split()[-1]
    deadline = time.monotonic() + 60
    counts: dict[str, int] = {}
    while time.monotonic() < deadline and counts.get("sent") != len(students):
        time.sleep(1)
        counts = json.loads(stack.cli_ok("grades", "status", batch_id, "--tenant", tenant_id))["counts"]
    assert counts.get("sent") == len(students) == 3, counts


def test_a_newcomer_gets_a_developer_key_and_live_events_from_local_up(stack: Stack) -> None:
    # `local up` on a running stack answers with it: its endpoints, where a developer key and Canvas's
    # live events must point, and the simulator then sends its live events to the stack's queue.
    shown = json.loads(stack.cli_ok("local", "up"))
    assert shown["api_url"] == stack.api_url and shown["canvas_url"] == stack.canvas_url
    assert shown["redirect_uri"] == f"{stack.api_url}/oauth/callback"
    assert shown["live_events_url"] == f"{stack.api_url}/live-events"
    delivery = stack.canvas("GET", "/_sim/live_events")
    assert delivery["sqs_queue_url"] == stack.outputs["LiveEventsQueueUrl"], delivery

    made = stack.cli("local", "dev-key", "--name", "newcomer")
    assert made.returncode == 0 and "rostersync tenant add" in made.stderr
    key = json.loads(made.stdout)
    assert (key["canvas_url"], key["redirect_uri"]) == (stack.canvas_url, shown["redirect_uri"])
    tenant_id = stack.cli_ok(
        "tenant", "add", "--name", "Newcomer U", "--canvas-url", key["canvas_url"],
        "--client-id", key["client_id"], "--client-secret", "-", "--allow-insecure-canvas",
        stdin=key["client_secret"] + "\n",
    )  # fmt: skip
    assert requests.get(stack.cli_ok("tenant", "authorize", tenant_id), timeout=30).status_code == 200
    assert json.loads(stack.cli_ok("tenant", "show", tenant_id))["status"] == "active"

    # People get tables, scripts ask for JSON.
    table = stack.cli_ok("tenant", "list").splitlines()
    assert table[0].split() == ["TENANT", "NAME", "STATUS", "CANVAS", "NEXT", "SYNC"]
    assert any(line.startswith(tenant_id) and "Newcomer U" in line and "active" in line for line in table)
    assert stack.cli_ok("holds", "list", "--tenant", tenant_id) == "no syncs waiting for approval"
    assert tenant_id in {
        t["tenant_id"] for t in json.loads(stack.cli_ok("tenant", "list", "--format", "json"))
    }
