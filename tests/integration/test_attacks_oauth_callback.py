"""Attacks on the OAuth start link and callback, each named after what it tries.

Whatever the attacker sends, the answer is a clear page (never a 500), no token is stored for them, and
the admin's own authorization still completes in the admin's browser.
"""

import json
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

from tests.integration.conftest import Stack
from tests.integration.test_admin_security import start_link, through_canvas

pytestmark = pytest.mark.integration


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **changes})))


def completes(browser: requests.Session, callback: str) -> bool:
    answer = browser.get(callback, allow_redirects=False, timeout=30)
    return answer.status_code == 302 and "/console?connected=" in answer.headers["Location"]


def refused_page(answer: requests.Response, reason: str) -> None:
    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"].startswith("text/html") and reason in answer.text
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


@pytest.fixture(scope="module")
def tenant_id(stack: Stack) -> str:
    return stack.connect_tenant()


def test_a_forged_binding_cookie_neither_completes_nor_spends_the_state(stack: Stack, tenant_id: str) -> None:
    admin = requests.Session()
    callback = through_canvas(admin, start_link(stack, tenant_id))
    attacker = requests.Session()
    attacker.cookies.set("rostersync_oauth", "guessed-value", path="/oauth/callback")
    refused_page(attacker.get(callback, allow_redirects=False, timeout=30), "another browser")
    assert completes(admin, callback)


def test_a_declined_answer_replayed_from_elsewhere_does_not_cancel_the_admin(
    stack: Stack, tenant_id: str
) -> None:
    admin = requests.Session()
    callback = through_canvas(admin, start_link(stack, tenant_id))
    declined = with_query(callback, error="access_denied")
    refused_page(requests.get(declined, allow_redirects=False, timeout=30), "another browser")
    assert completes(admin, callback)


def test_another_tenants_state_under_this_tenants_id_is_unknown(stack: Stack, tenant_id: str) -> None:
    other = stack.connect_tenant()
    admin = requests.Session()
    callback = through_canvas(admin, start_link(stack, other))
    other_state = parse_qs(urlsplit(callback).query)["state"][0].partition(".")[2]
    swapped = with_query(callback, state=f"{tenant_id}.{other_state}")
    refused_page(admin.get(swapped, allow_redirects=False, timeout=30), "unknown, expired or already used")
    assert completes(admin, callback)  # the other tenant's own authorization is untouched


def test_a_code_replayed_after_success_is_refused(stack: Stack, tenant_id: str) -> None:
    admin = requests.Session()
    callback = through_canvas(admin, start_link(stack, tenant_id))
    secret_before = stack.tenant_secret(tenant_id)
    assert completes(admin, callback)
    refused_page(admin.get(callback, allow_redirects=False, timeout=30), "already used")
    assert stack.tenant_secret(tenant_id)["access_token"] != secret_before["access_token"]


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"state": "no-separator"},
        {"state": "."},
        {"state": "t" * 10_000 + ".x", "code": "c" * 10_000},
        {"state": "\u0661\u0662.\u0000"},
    ],
)
def test_a_malformed_callback_is_a_clear_page(stack: Stack, query: dict[str, str]) -> None:
    answer = requests.get(f"{stack.api_url}/oauth/callback", params=query, allow_redirects=False, timeout=30)
    assert answer.status_code == 400 and answer.headers["Content-Type"].startswith("text/html")


def test_markup_in_the_error_parameter_is_shown_as_text(stack: Stack, tenant_id: str) -> None:
    admin = requests.Session()
    callback = through_canvas(admin, start_link(stack, tenant_id))
    answer = admin.get(
        with_query(callback, error="<script>alert(1)</script>"), allow_redirects=False, timeout=30
    )
    assert answer.status_code == 400 and "<script>" not in answer.text and "&lt;script&gt;" in answer.text


def test_a_start_link_for_an_unknown_tenant_creates_nothing(stack: Stack) -> None:
    answer = requests.get(
        f"{stack.api_url}/oauth/start",
        params={"state": "tnosuchtenant.abc"},
        allow_redirects=False,
        timeout=30,
    )
    refused_page(answer, "unknown, expired or already opened")
    listed = json.loads(stack.cli_ok("tenant", "list", "--format", "json"))
    assert "tnosuchtenant" not in {tenant["tenant_id"] for tenant in listed}
