"""Attacks on the admin API, each named after what it tries: every one must keep failing cleanly.

A deliberate 4xx with a clear message, nothing stored, and another tenant's data out of reach.
"""

import json
from typing import Any

import pytest
import requests

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

TOO_LONG_ID = "9" * 5000  # past Python's 4,300-digit int() limit and DynamoDB's 38-digit numbers
NOT_ASCII_IDS = ["\u0661\u0662", "\uff11\uff12", "\u00b2", "1\u0663"]  # Arabic-Indic, fullwidth, superscript


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> dict[str, str]:
    tenant_id = stack.connect_tenant()
    return {"tenant_id": tenant_id, "Authorization": f"Bearer {admin_token(stack, tenant_id)}"}


def admin_token(stack: Stack, tenant_id: str) -> str:
    return stack.cli_ok("admin", "token", "--tenant", tenant_id)


def post(stack: Stack, path: str, headers: dict[str, str], body: Any = None) -> requests.Response:
    return requests.post(f"{stack.api_url}{path}", json=body, headers=headers, timeout=60)


def post_raw(stack: Stack, path: str, headers: dict[str, str], text: str) -> requests.Response:
    headers = {**headers, "Content-Type": "application/json"}
    return requests.post(f"{stack.api_url}{path}", data=text.encode(), headers=headers, timeout=60)


def auth(tenant: dict[str, str]) -> dict[str, str]:
    return {"Authorization": tenant["Authorization"]}


def shown(stack: Stack, tenant_id: str) -> dict[str, Any]:
    return dict(json.loads(stack.cli_ok("tenant", "show", tenant_id)))


@pytest.mark.parametrize("path", ["/admin/sync", "/admin/courses/sync-list", "/admin/settings/canvas"])
def test_deeply_nested_json_is_a_clear_400(stack: Stack, tenant: dict[str, str], path: str) -> None:
    before = shown(stack, tenant["tenant_id"])
    for nested in ("[" * 50_000 + "]" * 50_000, '{"a":' * 20_000 + "1" + "}" * 20_000):
        answer = post_raw(stack, path, auth(tenant), nested)
        assert answer.status_code == 400 and "nested too deeply" in answer.json()["message"]
    assert shown(stack, tenant["tenant_id"]) == before


def test_a_path_id_of_thousands_of_digits_is_not_found(stack: Stack, tenant: dict[str, str]) -> None:
    headers = auth(tenant)
    for decision in ("approve", "reject"):
        assert post(stack, f"/admin/holds/{TOO_LONG_ID}/{decision}", headers, {}).status_code == 404
    results = f"{stack.api_url}/admin/courses/{TOO_LONG_ID}/live-assessments/1/results"
    assert requests.get(results, headers=headers, timeout=30).status_code == 404
    by_user = requests.get(
        f"{stack.api_url}/admin/courses/1/live-assessments/1/results",
        params={"user_id": TOO_LONG_ID},
        headers=headers,
        timeout=30,
    )
    assert by_user.status_code == 400 and "user_id" in by_user.json()["message"]


@pytest.mark.parametrize("digits", NOT_ASCII_IDS)
def test_non_ascii_digits_are_not_canvas_ids(stack: Stack, tenant: dict[str, str], digits: str) -> None:
    headers = auth(tenant)
    before = shown(stack, tenant["tenant_id"])
    assert post(stack, f"/admin/holds/{digits}/approve", headers, {}).status_code == 404
    assert post(stack, "/admin/sync", headers, {"course_ids": [digits]}).status_code == 400
    assert post(stack, "/admin/courses/all", headers, {"account_id": digits}).status_code == 400
    listed = post(stack, "/admin/courses/sync-list", headers, {"mode": "add", "csv": f"{digits}\n"})
    assert listed.status_code == 400 and "line 1" in listed.json()["error"]
    settings = {"canvas_url": stack.canvas_url, "client_id": digits, "client_secret": "s"}
    refused = post(stack, "/admin/settings/canvas", headers, settings)
    assert refused.status_code == 400 and refused.json()["field"] == "client_id"
    assert shown(stack, tenant["tenant_id"]) == before


def test_a_json_number_too_large_for_an_id_is_a_400(stack: Stack, tenant: dict[str, str]) -> None:
    answer = post(stack, "/admin/sync", auth(tenant), {"course_ids": [10**40]})
    assert answer.status_code == 400 and "course_ids" in answer.json()["message"]


def test_a_sync_list_too_large_for_one_item_is_refused_whole(stack: Stack, tenant: dict[str, str]) -> None:
    """A 1 MB list would pass the body cap but not DynamoDB's 400 KB item: refused before storing."""
    before = shown(stack, tenant["tenant_id"])
    many = "\n".join(str(100_000 + n) for n in range(4001))
    answer = post(
        stack, "/admin/courses/sync-list", auth(tenant), {"mode": "replace", "csv": many, "confirm": True}
    )
    assert answer.status_code == 400 and "at most 4000" in answer.json()["error"]
    long_references = "\n".join(f"sis_course_id:{'X' * 70}{n}" for n in range(3))
    too_long = post(stack, "/admin/courses/sync-list", auth(tenant), {"mode": "add", "csv": long_references})
    assert too_long.status_code == 400
    assert shown(stack, tenant["tenant_id"]) == before


def test_a_new_canvas_url_cannot_take_the_saved_secret_along(stack: Stack, tenant: dict[str, str]) -> None:
    before = shown(stack, tenant["tenant_id"])
    secret_before = stack.tenant_secret(tenant["tenant_id"])
    moved = {"canvas_url": "http://127.0.0.1:9", "client_id": before["client_id"], "client_secret": ""}
    refused = post(stack, "/admin/settings/canvas", auth(tenant), moved)
    assert refused.status_code == 400 and refused.json()["field"] == "client_secret"
    rekeyed = {"canvas_url": before["canvas_url"], "client_id": "12345", "client_secret": None}
    assert post(stack, "/admin/settings/canvas", auth(tenant), rekeyed).status_code == 400
    assert shown(stack, tenant["tenant_id"]) == before
    assert stack.tenant_secret(tenant["tenant_id"]) == secret_before


def test_another_tenants_pending_hold_can_be_neither_seen_nor_decided(stack: Stack) -> None:
    """A real held mass drop of tenant A; tenant B's admin tries every hold route on it."""
    owner, intruder = stack.connect_tenant(), stack.connect_tenant()
    stack.cli_ok("sync", "run", "--tenant", owner, "--wait", "--force")
    course = max(stack.export(owner)["courses"], key=lambda c: len(c["enrollments"]))
    students = [e for e in course["enrollments"] if e["type"] == "StudentEnrollment" and e["active"]]
    for enrollment in students[: len(students) // 2 + 1]:
        stack.canvas("POST", "/_sim/changes/drop", json={"enrollment_id": enrollment["canvas_id"]})
    held = stack.cli(
        "sync", "run", "--tenant", owner, "--course", str(course["canvas_id"]), "--wait", "--force"
    )
    assert held.returncode != 0 and "held" in held.stderr
    roster_before = stack.export(owner)

    intruder_headers = {"Authorization": f"Bearer {admin_token(stack, intruder)}"}
    listed = requests.get(f"{stack.api_url}/admin/holds", headers=intruder_headers, timeout=30)
    assert listed.status_code == 200 and listed.json() == []
    for decision in ("approve", "reject"):
        tried = post(stack, f"/admin/holds/{course['canvas_id']}/{decision}", intruder_headers, {})
        assert tried.status_code == 400 and "no sync waiting" in tried.json()["error"]
    errors = requests.get(
        f"{stack.api_url}/admin/errors", params={"format": "csv"}, headers=intruder_headers, timeout=30
    )
    owner_runs = {
        run["run"]["run_id"] for run in json.loads(stack.cli_ok("sync", "status", "--tenant", owner))
    }
    assert errors.status_code == 200 and not any(run_id in errors.text for run_id in owner_runs)

    # The owner's hold and roster are untouched, and the owner still sees and can decide it.
    assert stack.export(owner) == roster_before
    owner_holds = json.loads(stack.cli_ok("holds", "list", "--tenant", owner, "--format", "json"))
    assert [hold["course_id"] for hold in owner_holds] == [course["canvas_id"]]
    owner_headers = {"Authorization": f"Bearer {admin_token(stack, owner)}"}
    assert post(stack, f"/admin/holds/{course['canvas_id']}/reject", owner_headers, {}).status_code == 200
