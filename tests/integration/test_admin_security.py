"""The settings page's API under attack: cross-tenant use, CSRF, OAuth state abuse, operator-only routes."""

import json
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_tenants(stack: Stack) -> tuple[str, str]:
    return stack.connect_tenant(), stack.connect_tenant()


def bearer(stack: Stack, tenant_id: str, *, operator: bool = False) -> dict[str, str]:
    arguments = ("admin", "token", "--tenant", tenant_id, *(("--operator",) if operator else ()))
    return {"Authorization": f"Bearer {stack.cli_ok(*arguments)}"}


def post(
    stack: Stack, path: str, headers: dict[str, str], body: Any = None, **kwargs: Any
) -> requests.Response:
    return requests.post(f"{stack.api_url}{path}", json=body or {}, headers=headers, timeout=60, **kwargs)


def test_a_form_post_or_a_foreign_origin_is_refused(stack: Stack, two_tenants: tuple[str, str]) -> None:
    first, _ = two_tenants
    headers = bearer(stack, first)
    as_form = requests.post(
        f"{stack.api_url}/admin/sync", data="course_ids=1", headers=headers, timeout=30,
    )  # fmt: skip
    assert as_form.status_code == 415
    foreign = post(stack, "/admin/sync", {**headers, "Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "cross-origin" in foreign.json()["error"]
    cross_site = post(stack, "/admin/sync", {**headers, "Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    # The same call from our own origin is accepted (the middleware refuses only what it should).
    own = post(stack, "/admin/sync", {**headers, "Origin": stack.api_url}, {"course_ids": []})
    assert own.status_code in {202, 429}


def test_only_an_operator_creates_tenants(stack: Stack, two_tenants: tuple[str, str]) -> None:
    first, _ = two_tenants
    refused = post(stack, "/admin/tenants", bearer(stack, first), {"name": "Sneaky"})
    assert refused.status_code == 403
    created = post(stack, "/admin/tenants", bearer(stack, first, operator=True), {"name": "Granted"})
    assert created.status_code == 201
    shown = json.loads(stack.cli_ok("tenant", "show", created.json()["tenant_id"]))
    assert (shown["name"], shown["status"]) == ("Granted", "not_configured")


def test_another_tenants_settings_cannot_be_reached(stack: Stack, two_tenants: tuple[str, str]) -> None:
    first, second = two_tenants
    before = json.loads(stack.cli_ok("tenant", "show", first))
    settings = {"canvas_url": "https://canvas.example.edu", "client_id": "1", "client_secret": "x"}
    aimed = post(stack, "/admin/settings/canvas", bearer(stack, second), {"tenant_id": first, **settings})
    assert aimed.status_code == 400 and "tenant_id" in aimed.json()["message"]
    assert json.loads(stack.cli_ok("tenant", "show", first)) == before
    started = post(stack, "/admin/authorization", bearer(stack, second), {"tenant_id": first})
    state = parse_qs(urlsplit(started.json()["start_url"]).query)["state"][0]
    assert state.startswith(f"{second}.")
    report = post(stack, "/admin/self-test", bearer(stack, second))
    assert report.status_code == 200 and report.json()["tenant_id"] == second


def test_no_route_answers_with_a_secret(stack: Stack, two_tenants: tuple[str, str]) -> None:
    first, _ = two_tenants
    headers = bearer(stack, first)
    stored = stack.tenant_secret(first)
    secrets = [stored[name] for name in ("client_secret", "access_token", "refresh_token")]
    answers = [
        requests.get(f"{stack.api_url}{path}", headers=headers, timeout=60)
        for path in ("/admin/tenant", "/admin/runs", "/admin/errors", "/admin/holds", "/admin/roster/totals")
    ]
    answers += [post(stack, "/admin/self-test", headers), post(stack, "/admin/authorization", headers)]
    assert all(answer.status_code == 200 for answer in answers)
    for answer in answers:
        assert not any(secret in answer.text for secret in secrets), answer.url
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


def start_link(stack: Stack, tenant_id: str) -> str:
    started = post(stack, "/admin/authorization", bearer(stack, tenant_id))
    assert started.status_code == 200
    return str(started.json()["start_url"])


def through_canvas(browser: requests.Session, start_url: str) -> str:
    """Open the start link and approve in Canvas (the simulator approves at once); the callback URL."""
    to_canvas = browser.get(start_url, allow_redirects=False, timeout=30)
    assert to_canvas.status_code == 302, to_canvas.text
    back = browser.get(to_canvas.headers["Location"], allow_redirects=False, timeout=30)
    return str(back.headers["Location"])


def test_the_oauth_state_works_once_in_the_browser_that_started_it(
    stack: Stack, two_tenants: tuple[str, str]
) -> None:
    first, _ = two_tenants
    start_url = start_link(stack, first)
    admin_browser = requests.Session()
    callback = through_canvas(admin_browser, start_url)
    opened_again = requests.get(start_url, allow_redirects=False, timeout=30)
    assert opened_again.status_code == 400 and "already opened" in opened_again.text

    elsewhere = requests.get(callback, allow_redirects=False, timeout=30)  # no cookie: another browser
    assert elsewhere.status_code == 400 and "another browser" in elsewhere.text
    assert "frame-ancestors 'none'" in elsewhere.headers["Content-Security-Policy"]

    # The cookieless callback did not spend the state: the admin's own browser still completes.
    completed = admin_browser.get(callback, allow_redirects=False, timeout=30)
    assert completed.status_code == 302 and "/console?connected=" in completed.headers["Location"]
    replayed = admin_browser.get(callback, allow_redirects=False, timeout=30)
    assert replayed.status_code == 400 and "already used" in replayed.text

    forged = requests.get(f"{stack.api_url}/oauth/start", params={"state": f"{first}.forged"}, timeout=30)
    assert forged.status_code == 400


def test_an_operator_removes_a_tenant_and_everything_it_stored(stack: Stack) -> None:
    tenant_id = stack.connect_tenant()
    stack.cli_ok("sync", "run", "--tenant", tenant_id, "--wait", "--force")
    refused = stack.cli("tenant", "remove", tenant_id)
    assert refused.returncode != 0 and "--yes" in refused.stderr
    removed = json.loads(stack.cli_ok("tenant", "remove", tenant_id, "--yes"))
    assert removed["removed_items"] > 10
    assert stack.cli("tenant", "show", tenant_id).returncode != 0
    table = stack.aws("dynamodb")
    left = table.scan(
        TableName=stack.outputs["RosterTableName"],
        FilterExpression="begins_with(pk, :tenant)",
        ExpressionAttributeValues={":tenant": {"S": f"T#{tenant_id}"}},
    )["Items"]
    assert left == []
    secret = stack.aws("secretsmanager").describe_secret(
        SecretId=f"{stack.outputs['TenantSecretPrefix']}/{tenant_id}"
    )
    assert "DeletedDate" in secret


def test_an_operators_link_completes_in_a_client_that_keeps_no_cookies(stack: Stack) -> None:
    """The scripts' contract for `tenant authorize`: a plain HTTP client following the redirects (curl -L)."""
    tenant_id = stack.add_tenant(name="Scripted")
    url, hops = stack.cli_ok("tenant", "authorize", tenant_id), 0
    answer = requests.get(url, allow_redirects=False, timeout=30)
    while answer.is_redirect and hops < 8:
        url, hops = urljoin(url, answer.headers["Location"]), hops + 1
        answer = requests.get(url, allow_redirects=False, timeout=30)  # a new request: no cookie jar
    assert answer.status_code == 200 and "/console?connected=" in url
    assert json.loads(stack.cli_ok("tenant", "show", tenant_id))["status"] == "active"
