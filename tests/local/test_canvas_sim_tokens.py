"""Canvas simulator: admin controls over tokens, grants and developer-key scopes (``/_sim/tokens*``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from rostersync_local.canvas_sim import (
    DEFAULT_SCOPES,
    SEARCH_USERS_SCOPE,
    RunningSimulator,
    SimulatorConfig,
    serve,
)

TIMEOUT = 10
REDIRECT_URI = "http://127.0.0.1:8123/oauth/callback"
BEARER = 'Bearer realm="canvas-lms"'
ROLES_SCOPE = "url:GET|/api/v1/accounts/:account_id/roles"
NOT_FOUND = {"error": "invalid_request", "error_description": "refresh_token not found"}


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with serve(SimulatorConfig(seed=3, courses=6)) as running:
        yield running


def register_key(sim: RunningSimulator, scopes: list[str]) -> dict[str, Any]:
    body = {"name": "Roster Sync", "redirect_uri": REDIRECT_URI, "scopes": scopes}
    response = requests.post(f"{sim.url}/_sim/developer_keys", json=body, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


def authorize(sim: RunningSimulator, key: dict[str, Any], scopes: list[str]) -> dict[str, str]:
    """The query of the redirect back (``code`` or ``error``)."""
    params = {"client_id": key["client_id"], "response_type": "code", "redirect_uri": REDIRECT_URI,
              "state": "s", "scope": " ".join(scopes)}  # fmt: skip
    response = requests.get(f"{sim.url}/login/oauth2/auth", params=params, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def grant(sim: RunningSimulator, key: dict[str, Any], scopes: list[str] | None = None) -> dict[str, Any]:
    """Web flow (auto-approve) -> the token response."""
    code = authorize(sim, key, scopes if scopes is not None else key["scopes"])["code"]
    data = {"grant_type": "authorization_code", "client_id": key["client_id"],
            "client_secret": key["client_secret"], "redirect_uri": REDIRECT_URI, "code": code}  # fmt: skip
    response = requests.post(f"{sim.url}/login/oauth2/token", data=data, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def refresh(sim: RunningSimulator, key: dict[str, Any], refresh_token: str) -> requests.Response:
    data = {"grant_type": "refresh_token", "client_id": key["client_id"],
            "client_secret": key["client_secret"], "refresh_token": refresh_token}  # fmt: skip
    return requests.post(f"{sim.url}/login/oauth2/token", data=data, timeout=TIMEOUT)


def api(sim: RunningSimulator, token: str, path: str = "/accounts") -> requests.Response:
    return requests.get(f"{sim.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def admin(sim: RunningSimulator, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, f"{sim.url}/_sim{path}", json=body, timeout=TIMEOUT)


def assert_invalid_token(response: requests.Response) -> None:
    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Invalid access token."}]}
    assert response.headers["WWW-Authenticate"] == BEARER


# ------------------------------------------------------------------------------------------------ revoke
def test_revoke_by_access_token_deletes_the_grant(sim: RunningSimulator) -> None:
    key = register_key(sim, list(DEFAULT_SCOPES))
    kept, doomed = grant(sim, key), grant(sim, key)
    assert api(sim, doomed["access_token"]).status_code == 200
    revoked = admin(sim, "POST", "/tokens/revoke", {"access_token": doomed["access_token"]})
    assert revoked.status_code == 200 and revoked.json() == {"revoked": 1}
    assert_invalid_token(api(sim, doomed["access_token"]))
    gone = refresh(sim, key, doomed["refresh_token"])
    assert gone.status_code == 400 and gone.json() == NOT_FOUND
    assert api(sim, kept["access_token"]).status_code == 200  # the other grant of the key is untouched
    again = admin(sim, "POST", "/tokens/revoke", {"access_token": doomed["access_token"]})
    assert again.json() == {"revoked": 0}
    assert [entry["client_id"] for entry in admin(sim, "GET", "/tokens").json()] == [key["client_id"]]


def test_revoke_by_client_id_deletes_every_grant_of_the_key(sim: RunningSimulator) -> None:
    key = register_key(sim, list(DEFAULT_SCOPES))
    other_key = register_key(sim, list(DEFAULT_SCOPES))
    tokens = [grant(sim, key) for _ in range(3)]
    other = grant(sim, other_key)
    revoked = admin(sim, "POST", "/tokens/revoke", {"client_id": key["client_id"]})
    assert revoked.json() == {"revoked": 3}
    for token in tokens:
        assert_invalid_token(api(sim, token["access_token"]))
        assert refresh(sim, key, token["refresh_token"]).json() == NOT_FOUND
    assert api(sim, other["access_token"]).status_code == 200
    assert grant(sim, key)["access_token"]  # the key itself still works: the user can re-authorize
    for body in ({}, {"access_token": "a", "client_id": "b"}, {"access_token": 5}):
        assert admin(sim, "POST", "/tokens/revoke", body).status_code == 400


# ------------------------------------------------------------------------------------ key scope changes
def test_removing_a_scope_invalidates_every_token_of_the_key(sim: RunningSimulator) -> None:
    key = register_key(sim, list(DEFAULT_SCOPES))
    first, second = grant(sim, key), grant(sim, key)
    other_key = register_key(sim, list(DEFAULT_SCOPES))
    other = grant(sim, other_key)
    # adding a scope keeps old tokens but does not extend them
    added = admin(sim, "POST", f"/developer_keys/{key['client_id']}/scopes",
                  {"scopes": [*DEFAULT_SCOPES, SEARCH_USERS_SCOPE]})  # fmt: skip
    assert added.status_code == 200
    assert added.json()["invalidated_tokens"] == 0 and SEARCH_USERS_SCOPE in added.json()["scopes"]
    assert "client_secret" not in added.json()
    assert api(sim, first["access_token"]).status_code == 200
    narrow = api(sim, first["access_token"], "/courses/101/search_users")
    assert narrow.status_code == 401 and "WWW-Authenticate" not in narrow.headers
    assert narrow.json()["errors"][0]["message"] == "Insufficient scopes on access token."
    wide = grant(sim, key, [*DEFAULT_SCOPES, SEARCH_USERS_SCOPE])
    assert api(sim, wide["access_token"], "/courses/101/search_users").status_code == 200
    # removing one scope kills all three grants of the key
    remaining = [s for s in DEFAULT_SCOPES if s != ROLES_SCOPE]
    removed = admin(sim, "POST", f"/developer_keys/{key['client_id']}/scopes", {"scopes": remaining})
    assert removed.json()["invalidated_tokens"] == 3 and ROLES_SCOPE not in removed.json()["scopes"]
    for tokens in (first, second, wide):
        assert_invalid_token(api(sim, tokens["access_token"]))
        assert refresh(sim, key, tokens["refresh_token"]).json() == NOT_FOUND
    assert api(sim, other["access_token"]).status_code == 200  # other keys are not affected
    assert authorize(sim, key, [ROLES_SCOPE])["error"] == "invalid_scope"
    fresh = grant(sim, key, remaining)
    assert api(sim, fresh["access_token"]).status_code == 200
    assert api(sim, fresh["access_token"], "/accounts/1/roles").status_code == 401


def test_scope_endpoint_errors(sim: RunningSimulator) -> None:
    key = register_key(sim, list(DEFAULT_SCOPES))
    missing = admin(sim, "POST", "/developer_keys/999/scopes", {"scopes": list(DEFAULT_SCOPES)})
    assert missing.status_code == 404
    for body in ({}, {"scopes": "url:GET|/api/v1/accounts"}, {"scopes": ["GET /api/v1/accounts"]}):
        assert admin(sim, "POST", f"/developer_keys/{key['client_id']}/scopes", body).status_code == 400


# ------------------------------------------------------------------------------------------- summaries
def test_token_summary_counts_refreshes_and_hides_secrets(sim: RunningSimulator) -> None:
    assert admin(sim, "GET", "/tokens").json() == []
    key = register_key(sim, list(DEFAULT_SCOPES))
    tokens = grant(sim, key)
    entries = admin(sim, "GET", "/tokens").json()
    assert entries == [
        {"client_id": key["client_id"], "scopes_count": len(DEFAULT_SCOPES),
         "expires_at": entries[0]["expires_at"], "refresh_count": 0}
    ]  # fmt: skip
    assert entries[0]["expires_at"].endswith("Z")
    for expected in (1, 2, 3):
        renewed = refresh(sim, key, tokens["refresh_token"])
        assert renewed.status_code == 200
        summary = admin(sim, "GET", "/tokens")
        assert summary.json()[0]["refresh_count"] == expected
        for secret in (tokens["access_token"], tokens["refresh_token"], renewed.json()["access_token"]):
            assert secret not in summary.text
        assert key["client_secret"] not in summary.text
    admin(sim, "POST", "/tokens/expire_all")
    expired = api(sim, renewed.json()["access_token"])
    assert expired.status_code == 401 and expired.headers["WWW-Authenticate"] == BEARER
    assert expired.json()["errors"][0]["message"] == "Expired access token."
