"""Admins sign in to the settings page through the stack's identity provider (the local stack's stand-in
for Cognito's hosted UI), in Chromium, and every way a sign-in can be tampered with is refused."""

import base64
import hashlib
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Page, Request, Route, expect

from tests.integration import test_admin_console
from tests.integration.conftest import Stack

# The console tests' Chromium fixtures (a browser per module, a fresh context per test).
browser = test_admin_console.browser
page = test_admin_console.page

pytestmark = pytest.mark.integration
PASSWORD = "Correct-horse-42"


def stack_state(stack: Stack) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((stack.state_dir / "stack.json").read_text())
    return state


def new_tenant(stack: Stack, name: str) -> str:
    """A tenant without Canvas settings (its admin enters them on the page)."""
    return stack.cli_ok("tenant", "add", "--name", name, "--allow-insecure-canvas")


def invite(stack: Stack, tenant_id: str, email: str) -> None:
    url = stack.cli_ok("admin", "invite", "--tenant", tenant_id, "--email", email, "--password", PASSWORD)
    assert url == f"{stack.api_url}/console"


def sign_in_form(page: Page, idp_url: str) -> None:
    page.wait_for_url(f"{idp_url}/oauth2/authorize*")
    expect(page.locator("input[type=email]")).to_be_visible()
    expect(page.locator("input[type=password]")).to_be_visible()


def submit(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():  # the next page, not the last one, answers
        page.get_by_role("button", name="Sign in").click()


def test_an_invited_admin_signs_in_saves_a_setting_is_removed_and_signs_out(stack: Stack, page: Page) -> None:
    idp_url = stack_state(stack)["idp_url"]
    tenant_id = new_tenant(stack, "Sign-in University")
    invite(stack, tenant_id, "dana@signin.example.edu")
    bearer_tokens: list[str] = []

    def remember_token(request: Request) -> None:
        if "/admin/" in request.url and (header := request.headers.get("authorization")):
            bearer_tokens.append(header.removeprefix("Bearer "))

    page.on("request", remember_token)

    # No session: straight to the identity provider's login form.
    page.goto(f"{stack.api_url}/console")
    sign_in_form(page, idp_url)
    submit(page, "dana@signin.example.edu", "not-the-password")
    expect(page.get_by_role("alert")).to_have_text("Incorrect email or password.")
    page.screenshot(path=str(test_admin_console.SCREENSHOTS / "sign-in-refused.png"))
    submit(page, "nobody@signin.example.edu", PASSWORD)  # unknown email: the very same answer
    expect(page.get_by_role("alert")).to_have_text("Incorrect email or password.")
    submit(page, "dana@signin.example.edu", PASSWORD)

    page.wait_for_url(f"{stack.api_url}/console")
    expect(page.locator("#whoami")).to_contain_text("Sign-in University")
    expect(page.locator("#signed-in-as")).to_contain_text("dana@signin.example.edu")
    page.screenshot(path=str(test_admin_console.SCREENSHOTS / "signed-in.png"))
    assert "code=" not in page.url and "token" not in page.url
    stored = page.evaluate("JSON.stringify([localStorage, sessionStorage])")
    assert bearer_tokens and bearer_tokens[-1] not in stored  # tokens stay in the page's memory

    # A setting saved as this tenant's admin.
    key = stack.developer_key()
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Canvas Server").fill(stack.canvas_url)
    page.get_by_label("Client ID").fill(key["client_id"])
    page.get_by_label("Client Secret").fill(key["client_secret"])
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#canvas-notice")).to_contain_text("Settings saved")
    assert json.loads(stack.cli_ok("tenant", "show", tenant_id))["canvas_url"] == stack.canvas_url

    # Removed: the very next request is refused, though the token has not expired.
    stack.cli_ok("admin", "remove", "--tenant", tenant_id, "--email", "dana@signin.example.edu")
    assert json.loads(stack.cli_ok("admin", "list", "--tenant", tenant_id)) == []
    page.get_by_role("button", name="Edit").click()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#canvas-notice")).to_contain_text("not an admin of this tenant")

    # Invited again, then signed out: the IdP's session ends (the login form again) and the token is dead.
    invite(stack, tenant_id, "dana@signin.example.edu")
    page.reload()  # tokens were in memory: the IdP's session signs the page in again without a form
    page.wait_for_url(f"{stack.api_url}/console")
    expect(page.locator("#whoami")).to_contain_text("Sign-in University")
    token = bearer_tokens[-1]
    assert (
        requests.get(f"{stack.api_url}/admin/tenant", headers=_bearer(token), timeout=30).status_code == 200
    )
    page.get_by_role("button", name="Sign out").click()
    sign_in_form(page, idp_url)
    assert (
        requests.get(f"{stack.api_url}/admin/tenant", headers=_bearer(token), timeout=30).status_code == 401
    )


def test_an_admin_of_two_tenants_picks_one_and_never_reaches_a_third(stack: Stack, page: Page) -> None:
    idp_url = stack_state(stack)["idp_url"]
    first = new_tenant(stack, "Picker College")
    second = new_tenant(stack, "Picker Institute")
    third = new_tenant(stack, "Somebody Else's University")
    for tenant_id in (first, second):
        invite(stack, tenant_id, "pat@picker.example.edu")
    page.goto(f"{stack.api_url}/console")
    sign_in_form(page, idp_url)
    submit(page, "pat@picker.example.edu", PASSWORD)
    expect(page.locator("#whoami")).to_contain_text("Picker College")
    page.get_by_label("Tenant").select_option(label="Picker Institute")
    expect(page.locator("#whoami")).to_contain_text(f"Picker Institute ({second})")

    tokens = sign_in_by_hand(stack, "pat@picker.example.edu")
    headers = _bearer(tokens["access_token"])
    for tenant_id, status in ((first, 200), (second, 200), (third, 403)):
        answer = requests.get(
            f"{stack.api_url}/admin/tenant", headers={**headers, "X-Rostersync-Tenant": tenant_id}, timeout=30
        )
        assert answer.status_code == status, (tenant_id, answer.text)
    assert third not in json.dumps(
        requests.get(f"{stack.api_url}/admin/me", headers=headers, timeout=30).json()
    )
    # Without choosing, an admin of two tenants is told to choose (no tenant is guessed).
    assert requests.get(f"{stack.api_url}/admin/tenant", headers=headers, timeout=30).status_code == 403


def test_a_forged_state_or_a_swapped_nonce_is_refused_by_the_page(stack: Stack, page: Page) -> None:
    idp_url = stack_state(stack)["idp_url"]
    tenant_id = new_tenant(stack, "Nonce College")
    invite(stack, tenant_id, "sam@nonce.example.edu")

    page.goto(f"{stack.api_url}/console?code=stolen-code&state=forged-state")
    expect(page.locator("#sign-in-message")).to_contain_text("Sign-in failed")
    expect(page.locator("#console")).to_be_hidden()
    assert "code=" not in page.url

    def swap_nonce(route: Route) -> None:
        # The ID token as another sign-in's: same issuer and audience, another nonce.
        answer = route.fetch()
        body = answer.json()
        header, payload, signature = body["id_token"].split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["nonce"] = "another-sign-in"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        route.fulfill(response=answer, json={**body, "id_token": f"{header}.{forged}.{signature}"})

    page.route(f"{idp_url}/oauth2/token", swap_nonce)
    page.get_by_role("button", name="Sign in").click()
    sign_in_form(page, idp_url)
    submit(page, "sam@nonce.example.edu", PASSWORD)
    expect(page.locator("#sign-in-message")).to_contain_text("nonce")
    expect(page.locator("#console")).to_be_hidden()


# -- the protocol by hand, as an attacker would send it ------------------------------------------------
def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorization_code(stack: Stack, email: str, verifier: str) -> tuple[str, dict[str, Any]]:
    """A code from the login form, as the browser gets it; and the discovery document."""
    config = requests.get(f"{stack.api_url}/console/sign-in", timeout=30).json()
    discovery = requests.get(f"{config['issuer']}/.well-known/openid-configuration", timeout=30).json()
    session = requests.Session()
    form = session.get(
        discovery["authorization_endpoint"],
        params={
            "client_id": config["client_id"],
            "redirect_uri": f"{stack.api_url}/console",
            "response_type": "code",
            "scope": "openid email",
            "state": "s1",
            "nonce": "n1",
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
        },
        timeout=30,
    )
    login = re.search(r"name='login' value='([^']+)'", form.text)
    assert login, form.text
    back = session.post(
        f"{config['issuer']}/login",
        data={"login": login.group(1), "username": email, "password": PASSWORD},
        allow_redirects=False,
        timeout=30,
    )
    assert back.status_code == 302, back.text
    return parse_qs(urlsplit(back.headers["Location"]).query)["code"][0], {**discovery, **config}


def exchange(stack: Stack, found: dict[str, Any], code: str, verifier: str) -> requests.Response:
    return requests.post(
        found["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "client_id": found["client_id"],
            "code": code,
            "redirect_uri": f"{stack.api_url}/console",
            "code_verifier": verifier,
        },
        timeout=30,
    )


def sign_in_by_hand(stack: Stack, email: str) -> dict[str, Any]:
    verifier = secrets.token_urlsafe(48)
    code, found = authorization_code(stack, email, verifier)
    answer = exchange(stack, found, code, verifier)
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def test_a_replayed_code_a_wrong_verifier_and_foreign_tokens_are_refused(stack: Stack) -> None:
    tenant_id = new_tenant(stack, "Replay College")
    invite(stack, tenant_id, "lee@replay.example.edu")
    verifier = secrets.token_urlsafe(48)

    code, found = authorization_code(stack, "lee@replay.example.edu", verifier)
    wrong = exchange(stack, found, code, secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert "code_verifier" in wrong.json()["error_description"]
    # The failed attempt spent the code: even the right verifier cannot use it now.
    assert exchange(stack, found, code, verifier).status_code == 400

    code, found = authorization_code(stack, "lee@replay.example.edu", verifier)
    first = exchange(stack, found, code, verifier)
    assert first.status_code == 200
    replayed = exchange(stack, found, code, verifier)
    assert replayed.status_code == 400 and "already used" in replayed.json()["error_description"]
    tokens = first.json()
    assert requests.get(
        f"{stack.api_url}/admin/tenant", headers=_bearer(tokens["access_token"]), timeout=30
    ).ok

    # The refresh token refreshes until it is revoked.
    refresh = {
        "grant_type": "refresh_token",
        "client_id": found["client_id"],
        "refresh_token": tokens["refresh_token"],
    }
    assert requests.post(found["token_endpoint"], data=refresh, timeout=30).status_code == 200
    revoked = {"token": tokens["refresh_token"], "client_id": found["client_id"]}
    assert requests.post(found["revocation_endpoint"], data=revoked, timeout=30).status_code == 200
    assert requests.post(found["token_endpoint"], data=refresh, timeout=30).json()["error"] == "invalid_grant"

    # Tokens the authorizer must not take: the ID token (audience right, but another issuer's key would be
    # worse), a token re-signed by no one, and one whose issuer was edited.
    header, payload, signature = tokens["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for change in ({"iss": "https://cognito-idp.us-east-1.amazonaws.com/elsewhere"}, {"client_id": "other"}):
        edited = base64.urlsafe_b64encode(json.dumps({**claims, **change}).encode()).rstrip(b"=").decode()
        answer = requests.get(
            f"{stack.api_url}/admin/tenant", headers=_bearer(f"{header}.{edited}.{signature}"), timeout=30
        )
        assert answer.status_code == 401, change


def test_the_authorize_endpoint_refuses_unknown_clients_redirects_and_missing_pkce(stack: Stack) -> None:
    config = requests.get(f"{stack.api_url}/console/sign-in", timeout=30).json()
    authorize = f"{config['issuer']}/oauth2/authorize"
    good = {
        "client_id": config["client_id"],
        "redirect_uri": f"{stack.api_url}/console",
        "response_type": "code",
        "state": "s",
        "code_challenge": _challenge("v" * 50),
        "code_challenge_method": "S256",
    }
    unknown_client = requests.get(authorize, params={**good, "client_id": "nope"}, timeout=30)
    assert unknown_client.status_code == 400 and "unknown client_id" in unknown_client.text
    elsewhere = requests.get(
        authorize,
        params={**good, "redirect_uri": "https://evil.example/console"},
        allow_redirects=False,
        timeout=30,
    )
    assert elsewhere.status_code == 400 and "Location" not in elsewhere.headers  # never an open redirect
    plain = requests.get(
        authorize, params={**good, "code_challenge_method": "plain"}, allow_redirects=False, timeout=30
    )
    assert plain.status_code == 302 and "error=invalid_request" in plain.headers["Location"]
    implicit = requests.get(
        authorize, params={**good, "response_type": "token"}, allow_redirects=False, timeout=30
    )
    assert "error=unsupported_response_type" in implicit.headers["Location"]
