"""The admin API behind the JWT authorizer: every route answers for the token's tenant only."""

import json
import time
from typing import Any

import pytest
import requests

from rostersync_local.canvas_sim import SimulatorConfig, serve
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_tenants(stack: Stack) -> tuple[str, str]:
    return stack.connect_tenant(), stack.connect_tenant()


def token(stack: Stack, tenant_id: str) -> str:
    return stack.cli_ok("admin", "token", "--tenant", tenant_id)


def call(stack: Stack, method: str, path: str, bearer: str | None, **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    if method == "POST" and "data" not in kwargs:
        kwargs.setdefault("json", {})
    return requests.request(method, f"{stack.api_url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


ROUTES = [("GET", "/admin/tenant"), ("GET", "/admin/runs"), ("GET", "/admin/errors"), ("GET", "/admin/holds"),
          ("POST", "/admin/sync"), ("POST", "/admin/holds/101/approve"),
          ("GET", "/admin/courses/101/live-assessments/801/results")]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_valid_token_no_answer(stack: Stack, two_tenants: tuple[str, str], method: str, path: str) -> None:
    assert call(stack, method, path, None).status_code == 401
    assert call(stack, method, path, "not-a-jwt").status_code == 401
    first, _ = two_tenants
    forged = token(stack, first)
    header, payload, signature = forged.split(".")
    tampered = f"{header}.{payload[:-2]}AA.{signature}"
    assert call(stack, method, path, tampered).status_code == 401


def test_each_tenant_sees_only_itself_and_never_a_secret(stack: Stack, two_tenants: tuple[str, str]) -> None:
    first, second = two_tenants
    for tenant_id in (first, second):
        answer = call(stack, "GET", "/admin/tenant", token(stack, tenant_id))
        assert answer.status_code == 200
        body = answer.json()
        assert body["tenant_id"] == tenant_id
        assert body["redirect_uri"] == f"{stack.api_url}/oauth/callback"
        secret = stack.tenant_secret(tenant_id)
        for name in ("client_secret", "access_token", "refresh_token"):
            assert secret[name] not in answer.text


def test_sync_now_runs_for_the_tokens_tenant_with_a_cooldown(
    stack: Stack, two_tenants: tuple[str, str]
) -> None:
    first, second = two_tenants
    started = call(stack, "POST", "/admin/sync", token(stack, first))
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    again = call(stack, "POST", "/admin/sync", token(stack, first))
    assert again.status_code == 429 and "Retry-After" in again.headers
    summary = json.loads(stack.cli_ok("sync", "status", "--tenant", first, "--run", run_id))
    assert summary and summary[0]["run"]["tenant_id"] == first
    other_runs = call(stack, "GET", "/admin/runs", token(stack, second)).json()
    assert run_id not in {run["run"]["run_id"] for run in other_runs}


def test_holds_and_errors_of_another_tenant_are_out_of_reach(
    stack: Stack, two_tenants: tuple[str, str]
) -> None:
    _, second = two_tenants
    refused = call(stack, "POST", "/admin/holds/101/approve", token(stack, second))
    assert refused.status_code == 400 and "no sync waiting" in refused.json()["error"]
    csv_answer = call(stack, "GET", "/admin/errors", token(stack, second), params={"format": "csv"})
    assert csv_answer.status_code == 200 and csv_answer.text.startswith("run_id,course_id,user_id,code")


def test_grades_pushed_over_the_api_belong_to_the_tokens_tenant(
    stack: Stack, two_tenants: tuple[str, str]
) -> None:
    first, second = two_tenants
    stack.cli_ok("sync", "run", "--tenant", first, "--wait", "--force")
    course = max(stack.export(first)["courses"], key=lambda c: len(c["enrollments"]))
    students = {
        e["user_id"] for e in course["enrollments"] if e["type"] == "StudentEnrollment" and e["active"]
    }
    student = next(u["sis_user_id"] for u in course["users"] if u["canvas_id"] in students)
    batch = {
        "tenant_id": second,  # ignored: the token decides
        "course_id": course["canvas_id"],
        "assignment": {"external_id": "final-exam", "name": "Final exam", "points_possible": 50},
        "grades": [{"student": student, "score": 42}],
    }
    pushed = call(stack, "POST", "/admin/grades", token(stack, first), json=batch)
    assert pushed.status_code == 202
    batch_id = pushed.json()["batch_id"]
    assert call(stack, "GET", f"/admin/grades/{batch_id}", token(stack, second)).status_code == 404
    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline and state != "sent":
        time.sleep(1)
        answer = call(stack, "GET", f"/admin/grades/{batch_id}", token(stack, first)).json()
        state = answer["grades"][0]["state"]
    assert state == "sent"
    verified = call(stack, "GET", f"/admin/grades/{batch_id}/verify", token(stack, first))
    assert verified.status_code == 200 and verified.json()["all_match"] is True
    assert verified.json()["counts"]["matches"] == 1
    assert call(stack, "GET", f"/admin/grades/{batch_id}/verify", token(stack, second)).status_code == 404
    bad = call(stack, "POST", "/admin/grades", token(stack, first), json={"course_id": 1, "grades": []})
    assert bad.status_code == 400 and "invalid request" in bad.json()["message"]


def _as_served(result: dict[str, Any]) -> dict[str, Any]:
    """A Canvas Result as the admin route shows it: the same fields, ids in links as numbers."""
    return {**result, "links": {name: int(value) for name, value in result["links"].items()}}


def _live_results(stack: Stack, bearer: str, course_id: object, assessment_id: object, **params: str) -> Any:
    path = f"/admin/courses/{course_id}/live-assessments/{assessment_id}/results"
    return call(stack, "GET", path, bearer, params=params)


def test_live_assessment_results_come_from_the_tokens_tenants_own_canvas(
    stack: Stack, two_tenants: tuple[str, str]
) -> None:
    first, _ = two_tenants
    seeded = stack.canvas("GET", "/_sim/ground_truth")["live_assessments"][0]
    course_id, assessment_id = seeded["course_id"], seeded["id"]
    answer = _live_results(stack, token(stack, first), course_id, assessment_id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["course_id"], body["assessment_id"]) == (course_id, assessment_id)
    assert body["results"] == [_as_served(result) for result in seeded["results"]]
    user = seeded["results"][-1]["links"]["user"]
    mine = _live_results(stack, token(stack, first), course_id, assessment_id, user_id=user).json()
    assert mine["results"] == [_as_served(r) for r in seeded["results"] if r["links"]["user"] == user]
    assert _live_results(stack, token(stack, first), course_id, 999999).status_code == 404
    assert _live_results(stack, token(stack, first), course_id, "8x1").status_code == 404
    assert (
        _live_results(stack, token(stack, first), course_id, assessment_id, user_id="me").status_code == 400
    )

    # A tenant on another Canvas: the same path reads that Canvas, through that tenant's connection only.
    with serve(SimulatorConfig(seed=12, courses=14)) as other_canvas:
        key = requests.post(
            f"{other_canvas.url}/_sim/developer_keys",
            json={"name": "rostersync tests", "redirect_uri": f"{stack.api_url}/oauth/callback"},
            timeout=30,
        ).json()
        other = stack.cli_ok(
            "tenant", "add", "--name", "Other University", "--canvas-url", other_canvas.url,
            "--client-id", key["client_id"], "--client-secret", "-", "--allow-insecure-canvas",
            stdin=key["client_secret"] + "\n",
        )  # fmt: skip
        assert requests.get(stack.cli_ok("tenant", "authorize", other), timeout=30).status_code == 200
        theirs = requests.get(f"{other_canvas.url}/_sim/ground_truth", timeout=30).json()["live_assessments"]
        served = {(a["course_id"], a["id"]): a["results"] for a in theirs}
        same_path = _live_results(stack, token(stack, other), course_id, assessment_id)
        if (course_id, assessment_id) in served:
            assert same_path.json()["results"] == [_as_served(r) for r in served[course_id, assessment_id]]
        else:
            assert same_path.status_code == 404
        assert same_path.text != answer.text
        own = theirs[0]
        read = _live_results(stack, token(stack, other), own["course_id"], own["id"])
        assert read.status_code == 200 and read.json()["results"] == [_as_served(r) for r in own["results"]]
        ours = _live_results(stack, token(stack, first), own["course_id"], own["id"])
        assert ours.text != read.text  # the first tenant's token still reads the first tenant's Canvas


def test_a_failing_canvas_is_a_gateway_error_with_its_reason(
    stack: Stack, two_tenants: tuple[str, str]
) -> None:
    first, _ = two_tenants
    seeded = stack.canvas("GET", "/_sim/ground_truth")["live_assessments"][0]
    fault = {"status": 503, "path_regex": r"/live_assessments/\d+/results", "count": 20}
    stack.canvas("POST", "/_sim/faults", json=fault)
    try:
        answer = _live_results(stack, token(stack, first), seeded["course_id"], seeded["id"])
    finally:
        stack.canvas("DELETE", "/_sim/faults")
    assert answer.status_code == 502 and answer.json()["code"] == "canvas_unavailable", answer.text


def test_a_change_that_widens_what_syncs_needs_a_confirmation(stack: Stack) -> None:
    tenant_id = stack.connect_tenant()
    bearer = token(stack, tenant_id)
    listed = call(stack, "POST", "/admin/courses/sync-list", bearer, json={"mode": "add", "csv": "101\n"})
    assert listed.status_code == 200 and listed.json()["sync_list"] == ["101"]
    for path, body in (
        ("/admin/courses/sync-list", {"mode": "remove", "csv": "101\n"}),  # the last course: all courses
        ("/admin/courses/all", {"account_id": None}),
    ):
        asked = call(stack, "POST", path, bearer, json=body)
        assert asked.status_code == 409 and "confirm" in asked.json(), asked.text
        assert json.loads(stack.cli_ok("tenant", "show", tenant_id))["settings"]["courses"]["sync_list"] == [
            "101"
        ]
    done = call(stack, "POST", "/admin/courses/all", bearer, json={"account_id": None, "confirm": True})
    assert done.status_code == 200 and done.json()["sync_list"] == []
    # From the root account to a sub-account narrows: no question.
    narrowed = call(stack, "POST", "/admin/courses/all", bearer, json={"account_id": 1})
    assert narrowed.status_code == 200 and narrowed.json()["account_id"] == 1


def test_disconnect_revokes_the_grant_in_canvas_and_generate_key_connects_again(stack: Stack) -> None:
    tenant_id = stack.connect_tenant()
    access_token = stack.tenant_secret(tenant_id)["access_token"]
    answer = call(stack, "POST", "/admin/disconnect", token(stack, tenant_id))
    assert answer.status_code == 200 and answer.json()["status"] == "pending_authorization"
    assert "revoked in Canvas" in answer.json()["status_reason"]
    stored = stack.tenant_secret(tenant_id)
    assert stored["access_token"] is None and stored["refresh_token"] is None and stored["client_secret"]
    in_canvas = requests.get(
        f"{stack.canvas_url}/api/v1/accounts", headers={"Authorization": f"Bearer {access_token}"}, timeout=30
    )
    assert in_canvas.status_code == 401
    reconnected = requests.get(stack.cli_ok("tenant", "authorize", tenant_id), timeout=30)
    assert reconnected.status_code == 200
    assert json.loads(stack.cli_ok("tenant", "show", tenant_id))["status"] == "active"


def test_the_account_of_all_courses_must_be_a_number_canvas_knows(stack: Stack) -> None:
    tenant_id = stack.connect_tenant()
    bearer = token(stack, tenant_id)
    named = call(stack, "POST", "/admin/courses/all", bearer, json={"account_id": "School of Medicine"})
    assert named.status_code == 400 and "account's number" in named.json()["message"], named.text
    unknown = call(stack, "POST", "/admin/courses/all", bearer, json={"account_id": 99})
    assert unknown.status_code == 400, unknown.text
    assert (
        unknown.json()["field"] == "account_id"
        and "account 99 is not in this Canvas" in unknown.json()["error"]
    )
    settings = json.loads(stack.cli_ok("tenant", "show", tenant_id))["settings"]
    assert settings["courses"]["account_id"] is None
    sub_account = call(stack, "POST", "/admin/courses/all", bearer, json={"account_id": 2})
    assert sub_account.status_code == 200 and sub_account.json()["account_id"] == 2
