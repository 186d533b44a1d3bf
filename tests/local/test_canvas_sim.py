"""Tests of the Canvas LMS simulator, run against real servers started with ``serve()``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
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

REDIRECT_URI = "http://127.0.0.1:8123/oauth/callback"
TIMEOUT = 10


# --------------------------------------------------------------------------------------------- helpers
def register_key(sim: RunningSimulator, scopes: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Roster Sync", "redirect_uri": REDIRECT_URI}
    if scopes is not None:
        body["scopes"] = scopes
    response = requests.post(f"{sim.url}/_sim/developer_keys", json=body, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


def authorize(
    sim: RunningSimulator, key: dict[str, Any], scopes: list[str] | None = None, state: str = "st4te"
) -> requests.Response:
    params = {
        "client_id": key["client_id"],
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "state": state,
        "scope": " ".join(scopes if scopes is not None else key["scopes"]),
    }
    return requests.get(f"{sim.url}/login/oauth2/auth", params=params, allow_redirects=False, timeout=TIMEOUT)


def query_of(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(sim: RunningSimulator, key: dict[str, Any], code: str, **extra: str) -> requests.Response:
    data = {
        "grant_type": "authorization_code",
        "client_id": key["client_id"],
        "client_secret": key["client_secret"],
        "redirect_uri": REDIRECT_URI,
        "code": code,
        **extra,
    }
    return requests.post(f"{sim.url}/login/oauth2/token", data=data, timeout=TIMEOUT)


def refresh(sim: RunningSimulator, key: dict[str, Any], refresh_token: str) -> requests.Response:
    data = {
        "grant_type": "refresh_token",
        "client_id": key["client_id"],
        "client_secret": key["client_secret"],
        "refresh_token": refresh_token,
    }
    return requests.post(f"{sim.url}/login/oauth2/token", data=data, timeout=TIMEOUT)


def oauth_flow(
    sim: RunningSimulator, scopes: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full web flow with auto-approve: (developer key, token response)."""
    key = register_key(sim)
    code = query_of(authorize(sim, key, scopes))["code"]
    response = exchange(sim, key, code)
    assert response.status_code == 200, response.text
    return key, response.json()


def api(sim: RunningSimulator, token: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return requests.get(f"{sim.url}/api/v1{path}", headers=headers, timeout=TIMEOUT, **kwargs)


def get_all(sim: RunningSimulator, token: str, path: str, params: Any = None) -> tuple[list[Any], list[str]]:
    """Follow rel=next; returns the items and every rel seen."""
    items: list[Any] = []
    rels: list[str] = []
    response = api(sim, token, path, params=params)
    while True:
        assert response.status_code == 200, response.text
        items.extend(response.json())
        rels.extend(response.links)
        next_url = response.links.get("next", {}).get("url")
        if not next_url:
            return items, rels
        assert next_url.startswith(sim.url)
        response = requests.get(next_url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)


def without_base(sim: RunningSimulator, data: Any) -> str:
    return json.dumps(data, sort_keys=True).replace(sim.url, "<base>")


# -------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve(SimulatorConfig(seed=7, courses=60)) as running:
        yield running


@pytest.fixture
def small_sim() -> Iterator[RunningSimulator]:
    """A private simulator for tests that change global state (config, faults, token expiry)."""
    with serve(SimulatorConfig(seed=3, courses=6)) as running:
        yield running


@pytest.fixture(scope="module")
def truth(sim: RunningSimulator) -> dict[str, Any]:
    response = requests.get(f"{sim.url}/_sim/ground_truth", timeout=TIMEOUT)
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


@pytest.fixture(scope="module")
def token(sim: RunningSimulator) -> str:
    return str(oauth_flow(sim)[1]["access_token"])


def course_enrollments(truth: dict[str, Any], course_id: int, states: set[str]) -> list[dict[str, Any]]:
    return [
        e for e in truth["enrollments"] if e["course_id"] == course_id and e["enrollment_state"] in states
    ]


# ------------------------------------------------------------------------------------ generated data
def test_same_seed_same_data_and_different_seed_different_data(
    sim: RunningSimulator, truth: dict[str, Any]
) -> None:
    with (
        serve(SimulatorConfig(seed=7, courses=60)) as twin,
        serve(SimulatorConfig(seed=8, courses=60)) as other,
    ):
        twin_truth = requests.get(f"{twin.url}/_sim/ground_truth", timeout=TIMEOUT).json()
        other_truth = requests.get(f"{other.url}/_sim/ground_truth", timeout=TIMEOUT).json()
    assert without_base(twin, twin_truth) == without_base(sim, truth)
    assert [c["uuid"] for c in other_truth["courses"]] != [c["uuid"] for c in truth["courses"]]
    assert [u["name"] for u in other_truth["users"]] != [u["name"] for u in truth["users"]]


def test_institution_shape(truth: dict[str, Any]) -> None:
    root = truth["root_account"]
    assert (root["id"], root["name"], root["parent_account_id"], root["root_account_id"]) == (
        1,
        "Demo University",
        None,
        None,
    )
    assert re.fullmatch(r"[A-Za-z0-9]{40}", root["uuid"])
    subs = {a["id"]: a for a in truth["accounts"] if a["id"] != 1}
    assert {2, 3, 4} <= set(subs)
    assert subs[4]["parent_account_id"] == 2 and subs[4]["root_account_id"] == 1
    now = datetime.now(UTC).isoformat()
    terms = truth["terms"]
    assert any(t["name"] == "Default Term" for t in terms)
    assert any(t["start_at"] and t["start_at"] < now < t["end_at"] for t in terms)
    assert any(t["end_at"] and t["end_at"] < now for t in terms)

    courses = truth["courses"]
    assert [c["id"] for c in courses] == list(range(101, 161))
    states = Counter(c["workflow_state"] for c in courses)
    assert states["unpublished"] == 6 and states["completed"] == 6 and states["available"] == 48
    assert {c["account_id"] for c in courses} >= {2, 3, 4}
    assert any(c["sis_course_id"] is None for c in courses)
    nicknamed = [c for c in courses if "original_name" in c]
    assert len(nicknamed) == 1 and nicknamed[0]["name"] != nicknamed[0]["original_name"]
    assert nicknamed[0]["workflow_state"] == "available"

    sections = truth["sections"]
    assert min(s["id"] for s in sections) == 1001
    per_course = Counter(s["course_id"] for s in sections)
    assert set(per_course.values()) <= {1, 2, 3, 4}
    assert len([s for s in sections if s["nonxlist_course_id"] is not None]) == 1
    assert any(s["sis_section_id"] is None for s in sections)

    users = {u["id"]: u for u in truth["users"]}
    assert min(users) == 5001
    for user in users.values():
        first, last = user["first_name"], user["last_name"]
        assert user["name"] == f"{first} {last}" and user["sortable_name"] == f"{last}, {first}"
    assert any(u["email"] is None for u in users.values())
    assert any(u["sis_user_id"] is None and u["name"] != "Test Student" for u in users.values())


def test_enrollment_mix(truth: dict[str, Any]) -> None:
    enrollments = truth["enrollments"]
    users = {u["id"]: u for u in truth["users"]}
    roles = {r["label"]: r for r in truth["roles"]}
    assert min(e["id"] for e in enrollments) == 50001
    real = [e for e in enrollments if e["type"] not in {"StudentViewEnrollment", "ObserverEnrollment"}]
    assert len(real) >= 1500
    assert {"active", "inactive", "completed", "invited", "deleted"} <= {
        e["enrollment_state"] for e in enrollments
    }

    lab = [e for e in enrollments if e["role"] == "Lab Student"]
    assert lab and all(e["type"] == "StudentEnrollment" for e in lab)
    assert {e["role_id"] for e in lab} == {roles["Lab Student"]["id"]}
    assert roles["Lab Student"]["base_role_type"] == "StudentEnrollment"
    builtin = {r["role"]: r["id"] for r in truth["roles"] if r["workflow_state"] == "built_in"}
    assert all(e["role_id"] == builtin[e["role"]] for e in enrollments if e["role"] in builtin)

    test_students = [e for e in enrollments if e["type"] == "StudentViewEnrollment"]
    assert len(test_students) == 60 and len({e["course_id"] for e in test_students}) == 60
    assert all(users[e["user_id"]]["name"] == "Test Student" for e in test_students)

    for observer in [e for e in enrollments if e["type"] == "ObserverEnrollment"]:
        assert any(
            e["user_id"] == observer["associated_user_id"] and e["course_id"] == observer["course_id"]
            for e in enrollments
            if e["type"] == "StudentEnrollment"
        )
    per_user_course = Counter(
        (e["user_id"], e["course_id"]) for e in enrollments if e["type"] == "StudentEnrollment"
    )
    assert any(n == 2 for n in per_user_course.values())
    courses_per_student = Counter(e["user_id"] for e in enrollments if e["type"] == "StudentEnrollment")
    assert max(courses_per_student.values()) >= 3
    per_course = Counter(e["course_id"] for e in real if e["type"] == "StudentEnrollment")
    assert 25 <= sum(per_course.values()) / len(per_course) <= 35  # cross-listing moves a few around
    assert min(per_course.values()) >= 10


# ------------------------------------------------------------------------------------------------ OAuth
def test_oauth_auto_approve_flow_and_token_response(sim: RunningSimulator) -> None:
    key = register_key(sim)
    assert re.fullmatch(r"\d+", key["client_id"]) and key["scopes"] == list(DEFAULT_SCOPES)
    assert len(DEFAULT_SCOPES) == 17
    params = query_of(authorize(sim, key, state="abc123"))
    assert params["state"] == "abc123" and params["code"]
    response = exchange(sim, key, params["code"])
    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "access_token",
        "token_type",
        "user",
        "refresh_token",
        "expires_in",
        "canvas_region",
    ]
    assert body["access_token"].startswith("1~") and body["token_type"] == "Bearer"
    assert body["user"] == {"id": 1, "name": "Sam Admin"}
    assert body["expires_in"] == 3600 and body["canvas_region"] == "unknown"
    assert api(sim, body["access_token"], "/accounts/self").json()["name"] == "Demo University"


def test_code_is_single_use_and_bound_to_redirect_uri(sim: RunningSimulator) -> None:
    key = register_key(sim)
    code = query_of(authorize(sim, key))["code"]
    wrong = exchange(sim, key, code, redirect_uri="http://127.0.0.1:8123/elsewhere")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert exchange(sim, key, code, grant_type="").status_code == 200  # grant_type implied by code
    again = exchange(sim, key, code)
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant", "error_description": "authorization_code not found"}
    other_key = register_key(sim)
    code = query_of(authorize(sim, key))["code"]
    stolen = exchange(sim, other_key, code)
    assert stolen.json() == {"error": "invalid_grant", "error_description": "incorrect client"}


def test_codes_expire_after_ten_minutes(small_sim: RunningSimulator) -> None:
    key = register_key(small_sim)
    code = query_of(authorize(small_sim, key))["code"]
    real_clock = small_sim.state.clock
    small_sim.state.clock = lambda: real_clock() + 601
    try:
        expired = exchange(small_sim, key, code)
    finally:
        small_sim.state.clock = real_clock
    assert expired.json() == {"error": "invalid_grant", "error_description": "authorization_code not found"}


def test_manual_approval_page_cancel_and_authorize(small_sim: RunningSimulator) -> None:
    config = requests.post(f"{small_sim.url}/_sim/config", json={"auto_approve": False}, timeout=TIMEOUT)
    assert config.json()["auto_approve"] is False
    key = register_key(small_sim)
    page = authorize(small_sim, key, scopes=key["scopes"][:2], state="s1")
    assert page.status_code == 200 and "<title>Authorize</title>" in page.text
    assert "Roster Sync" in page.text and "url:GET|/api/v1/accounts" in page.text
    assert 'action="/login/oauth2/accept"' in page.text and ">Cancel</button>" in page.text
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    assert hidden["state"] == "s1" and hidden["client_id"] == key["client_id"]
    accept = f"{small_sim.url}/login/oauth2/accept"
    cancelled = requests.post(accept, data={**hidden, "cancel": "1"}, allow_redirects=False, timeout=TIMEOUT)
    assert query_of(cancelled) == {"error": "access_denied", "state": "s1"}

    page = authorize(small_sim, key, state="s2")
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    approved = requests.post(
        accept, data={**hidden, "authorize": "1"}, allow_redirects=False, timeout=TIMEOUT
    )
    params = query_of(approved)
    assert params["state"] == "s2"
    assert exchange(small_sim, key, params["code"]).status_code == 200


def test_refresh_rotates_access_token_and_delete_kills_grant(sim: RunningSimulator) -> None:
    key, tokens = oauth_flow(sim)
    old = tokens["access_token"]
    response = refresh(sim, key, tokens["refresh_token"])
    assert response.status_code == 200
    body = response.json()
    assert "refresh_token" not in body and body["access_token"] != old and body["expires_in"] == 3600
    stale = api(sim, old, "/accounts/self")
    assert stale.status_code == 401 and stale.json() == {"errors": [{"message": "Invalid access token."}]}
    assert stale.headers["WWW-Authenticate"] == 'Bearer realm="canvas-lms"'
    assert api(sim, body["access_token"], "/accounts/self").status_code == 200
    second = refresh(sim, key, tokens["refresh_token"])  # the refresh token stays valid
    assert second.status_code == 200

    deleted = requests.delete(
        f"{sim.url}/login/oauth2/token",
        headers={"Authorization": f"Bearer {second.json()['access_token']}"},
        timeout=TIMEOUT,
    )
    assert deleted.status_code == 200 and deleted.json() == {}
    gone = refresh(sim, key, tokens["refresh_token"])
    assert gone.status_code == 400
    assert gone.json() == {"error": "invalid_request", "error_description": "refresh_token not found"}
    assert api(sim, second.json()["access_token"], "/accounts/self").status_code == 401


def test_token_endpoint_client_errors(sim: RunningSimulator) -> None:
    key, tokens = oauth_flow(sim)
    url = f"{sim.url}/login/oauth2/token"
    bad_secret = {**key, "client_secret": "nope"}
    wrong = refresh(sim, bad_secret, tokens["refresh_token"])
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "invalid_client", "error_description": "invalid client"}
    assert wrong.headers["WWW-Authenticate"] == "Canvas OAuth 2.0"
    unknown = refresh(sim, {**key, "client_id": "999"}, tokens["refresh_token"])
    assert unknown.status_code == 401 and unknown.json()["error_description"] == "unknown client"
    basic = requests.post(
        url,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(key["client_id"], key["client_secret"]),
        timeout=TIMEOUT,
    )
    assert basic.status_code == 200
    unsupported = requests.post(
        url,
        data={"grant_type": "password", "client_id": key["client_id"], "client_secret": key["client_secret"]},
        timeout=TIMEOUT,
    )
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"
    missing = requests.post(
        url,
        data={
            "grant_type": "refresh_token",
            "client_id": key["client_id"],
            "client_secret": key["client_secret"],
        },
        timeout=TIMEOUT,
    )
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_authorize_endpoint_errors(sim: RunningSimulator) -> None:
    key = register_key(sim, scopes=list(DEFAULT_SCOPES[:3]))
    unknown = authorize(sim, {**key, "client_id": "abc"})
    assert (
        unknown.status_code == 400 and "unknown client" in unknown.text and "Location" not in unknown.headers
    )
    response = requests.get(
        f"{sim.url}/login/oauth2/auth",
        params={
            "client_id": key["client_id"],
            "response_type": "code",
            "redirect_uri": "http://evil.test/cb",
            "scope": DEFAULT_SCOPES[0],
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 400 and "redirect_uri does not match client settings" in response.text
    too_much = query_of(authorize(sim, key, scopes=[DEFAULT_SCOPES[0], DEFAULT_SCOPES[9]], state="q"))
    assert too_much["error"] == "invalid_scope" and too_much["state"] == "q"
    assert DEFAULT_SCOPES[9] in too_much["error_description"]
    assert DEFAULT_SCOPES[0] not in too_much["error_description"]
    assert query_of(authorize(sim, key, scopes=[]))["error"] == "invalid_scope"
    response = requests.get(
        f"{sim.url}/login/oauth2/auth",
        params={
            "client_id": key["client_id"],
            "response_type": "token",
            "redirect_uri": REDIRECT_URI,
            "scope": DEFAULT_SCOPES[0],
            "state": "z",
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert query_of(response)["error"] == "unsupported_response_type"


# ------------------------------------------------------------------------------------- API auth, scopes
def test_scope_enforcement(sim: RunningSimulator) -> None:
    _, tokens = oauth_flow(
        sim, scopes=["url:GET|/api/v1/accounts/:id", "url:GET|/api/v1/courses/:course_id/users"]
    )
    access = tokens["access_token"]
    assert api(sim, access, "/accounts/1").status_code == 200
    assert api(sim, access, "/courses/101/users").status_code == 200
    denied = api(sim, access, "/courses/101/enrollments")
    assert denied.status_code == 401
    assert denied.json() == {"errors": [{"message": "Insufficient scopes on access token."}]}
    assert "WWW-Authenticate" not in denied.headers


def test_api_authentication_errors(small_sim: RunningSimulator) -> None:
    missing = requests.get(f"{small_sim.url}/api/v1/accounts", timeout=TIMEOUT)
    assert missing.status_code == 401
    assert missing.json() == {
        "status": "unauthenticated",
        "errors": [{"message": "user authorization required"}],
    }
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="canvas-lms"'
    bogus = api(small_sim, "1~bogus", "/accounts")
    assert bogus.status_code == 401 and bogus.json()["errors"][0]["message"] == "Invalid access token."
    key, tokens = oauth_flow(small_sim)
    assert api(small_sim, tokens["access_token"], "/accounts").status_code == 200
    requests.post(f"{small_sim.url}/_sim/tokens/expire_all", timeout=TIMEOUT)
    expired = api(small_sim, tokens["access_token"], "/accounts")
    assert expired.status_code == 401 and expired.headers["WWW-Authenticate"] == 'Bearer realm="canvas-lms"'
    error = expired.json()["errors"][0]
    assert error["message"] == "Expired access token." and error["expired_at"].endswith("Z")
    renewed = refresh(small_sim, key, tokens["refresh_token"]).json()["access_token"]
    assert api(small_sim, renewed, "/accounts").status_code == 200
    not_found = api(small_sim, renewed, "/courses/99999/sections")
    assert not_found.status_code == 404
    assert not_found.json() == {"errors": [{"message": "The specified resource does not exist."}]}
    assert api(small_sim, renewed, "/no/such/route").status_code == 404
    for response in (missing, bogus, expired, not_found):
        assert float(response.headers["X-Request-Cost"]) >= 0
        assert float(response.headers["X-Rate-Limit-Remaining"]) > 0


def test_short_token_ttl(small_sim: RunningSimulator) -> None:
    requests.post(f"{small_sim.url}/_sim/config", json={"token_ttl_seconds": 0}, timeout=TIMEOUT)
    _, tokens = oauth_flow(small_sim)
    assert tokens["expires_in"] == 0
    expired = api(small_sim, tokens["access_token"], "/accounts")
    assert expired.json()["errors"][0]["message"] == "Expired access token."


# --------------------------------------------------------------------------------------------- pagination
def test_enrollment_pagination_collects_ground_truth(
    sim: RunningSimulator, token: str, truth: dict[str, Any]
) -> None:
    course_id = 105
    items, rels = get_all(
        sim, token, f"/courses/{course_id}/enrollments", {"state[]": ["active", "invited"], "per_page": 7}
    )
    expected = course_enrollments(truth, course_id, {"active", "invited"})
    assert [e["id"] for e in items] == [e["id"] for e in expected]
    assert items == expected
    assert "last" not in rels and "prev" not in rels and rels.count("next") >= 2
    default, _ = get_all(sim, token, f"/courses/{course_id}/enrollments")
    assert {e["id"] for e in default} == {
        e["id"] for e in course_enrollments(truth, course_id, {"active", "invited", "inactive"})
    }
    deleted, _ = get_all(sim, token, "/courses/101/enrollments", {"state[]": "deleted"})
    assert {e["id"] for e in deleted} == {e["id"] for e in course_enrollments(truth, 101, {"deleted"})}


def test_link_header_details(sim: RunningSimulator, token: str) -> None:
    page2 = api(
        sim,
        token,
        "/accounts/1/courses",
        params={"include[]": ["term", "total_students"], "page": 2, "per_page": 5, "access_token": token},
    )
    assert page2.status_code == 200 and len(page2.json()) == 5
    assert set(page2.links) == {"current", "next", "prev", "first"}
    next_url = page2.links["next"]["url"]
    assert next_url.startswith(f"{sim.url}/api/v1/accounts/1/courses?")
    query = parse_qs(urlsplit(next_url).query)
    assert query == {"include[]": ["term", "total_students"], "page": ["3"], "per_page": ["5"]}
    assert "access_token" not in page2.headers["Link"]
    assert page2.headers["Link"].count(">; rel=") == 4 and '",<' in page2.headers["Link"]

    users = api(sim, token, "/courses/101/users")
    assert "last" not in users.links and "next" in users.links
    sections = api(sim, token, "/accounts/1/roles", params={"per_page": 3, "page": 2})
    assert {"current", "next", "prev", "first", "last"} == set(sections.links)
    assert parse_qs(urlsplit(sections.links["last"]["url"]).query)["page"] == ["3"]
    beyond = api(sim, token, "/accounts/1/courses", params={"page": 99})
    assert beyond.status_code == 200 and beyond.json() == []
    bad = api(sim, token, "/courses/101/enrollments", params={"page": "bookmark:garbage!!"})
    assert bad.status_code == 404
    clamped = api(sim, token, "/accounts/1/courses", params={"per_page": 500})
    assert parse_qs(urlsplit(clamped.links["current"]["url"]).query)["per_page"] == ["100"]
    assert len(clamped.json()) == 60
    default = api(sim, token, "/accounts/1/courses")
    assert len(default.json()) == 10


def test_per_page_is_clamped_to_100() -> None:
    with serve(SimulatorConfig(seed=1, courses=130)) as big:
        access = big.create_token()["access_token"]
        response = api(big, access, "/accounts/1/courses", params={"per_page": 500})
        assert len(response.json()) == 100 and "next" in response.links and "last" not in response.links
        assert len(api(big, access, "/accounts/1/courses", params={"per_page": 0}).json()) == 1


# ----------------------------------------------------------------------------------- roster behaviour
def test_account_courses_filters(sim: RunningSimulator, token: str, truth: dict[str, Any]) -> None:
    all_courses, rels = get_all(sim, token, "/accounts/1/courses", {"per_page": 25})
    assert [c["id"] for c in all_courses] == [c["id"] for c in truth["courses"]] and "last" not in rels
    available, _ = get_all(sim, token, "/accounts/1/courses", {"state[]": "available", "per_page": 100})
    assert len(available) == 48 and {c["workflow_state"] for c in available} == {"available"}
    mixed, _ = get_all(
        sim, token, "/accounts/1/courses", {"state[]": ["created", "claimed"], "per_page": 100}
    )
    unpublished, _ = get_all(sim, token, "/accounts/1/courses", {"published": "false", "per_page": 100})
    assert {c["id"] for c in mixed} == {c["id"] for c in unpublished}
    assert {c["workflow_state"] for c in unpublished} == {"unpublished"}
    past, _ = get_all(
        sim,
        token,
        "/accounts/1/courses",
        {"enrollment_term_id": 3, "per_page": 100, "include[]": ["concluded", "term"]},
    )
    assert past and all(c["concluded"] and c["term"]["id"] == 3 for c in past)
    law, _ = get_all(sim, token, "/accounts/3/courses", {"per_page": 100})
    assert {c["account_id"] for c in law} == {3}
    medicine, _ = get_all(sim, token, "/accounts/2/courses", {"per_page": 100})
    assert {c["account_id"] for c in medicine} == {2, 4}  # sub-account courses included

    course = api(sim, token, "/accounts/1/courses/101", params={"include[]": "total_students"}).json()
    students = {
        e["user_id"]
        for e in truth["enrollments"]
        if e["course_id"] == 101
        and e["type"] == "StudentEnrollment"
        and e["enrollment_state"] in {"active", "invited"}
    }
    assert course["total_students"] == len(students)
    assert api(sim, token, "/accounts/3/courses/101").status_code == (
        200 if truth["courses"][0]["account_id"] == 3 else 404
    )
    nicknamed = next(c for c in truth["courses"] if "original_name" in c)
    fetched = api(sim, token, f"/accounts/1/courses/{nicknamed['id']}").json()
    assert fetched["name"] == nicknamed["name"] and fetched["original_name"] == nicknamed["original_name"]


def test_crosslisted_section(sim: RunningSimulator, token: str, truth: dict[str, Any]) -> None:
    section = next(s for s in truth["sections"] if s["nonxlist_course_id"] is not None)
    target, origin = section["course_id"], section["nonxlist_course_id"]
    assert target != origin
    origin_sections, _ = get_all(sim, token, f"/courses/{origin}/sections")
    target_sections, _ = get_all(sim, token, f"/courses/{target}/sections")
    assert section["id"] not in {s["id"] for s in origin_sections} and origin_sections
    assert section["id"] in {s["id"] for s in target_sections}
    assert api(sim, token, f"/courses/{origin}/sections/{section['id']}").status_code == 404
    fetched = api(sim, token, f"/sections/{section['id']}").json()
    assert fetched["course_id"] == target and fetched["nonxlist_course_id"] == origin

    moved = [e for e in truth["enrollments"] if e["course_section_id"] == section["id"]]
    assert moved and all(e["course_id"] == target for e in moved)
    target_enr, _ = get_all(sim, token, f"/courses/{target}/enrollments", {"per_page": 100})
    origin_enr, _ = get_all(sim, token, f"/courses/{origin}/enrollments", {"per_page": 100})
    live_moved = {e["id"] for e in moved if e["enrollment_state"] in {"active", "invited", "inactive"}}
    assert live_moved <= {e["id"] for e in target_enr}
    assert not live_moved & {e["id"] for e in origin_enr}
    assert section["id"] not in {e["course_section_id"] for e in origin_enr}
    student_ids = {
        e["user_id"] for e in moved if e["type"] == "StudentEnrollment" and e["enrollment_state"] == "active"
    }
    target_users, _ = get_all(sim, token, f"/courses/{target}/users", {"per_page": 100})
    origin_users, _ = get_all(sim, token, f"/courses/{origin}/users", {"per_page": 100})
    assert student_ids <= {u["id"] for u in target_users}
    assert not student_ids & {u["id"] for u in origin_users}


def test_course_users(sim: RunningSimulator, token: str, truth: dict[str, Any]) -> None:
    course_id = 102
    users, rels = get_all(sim, token, f"/courses/{course_id}/users", {"include[]": ["enrollments", "email"]})
    assert "last" not in rels
    expected = {
        e["user_id"]
        for e in course_enrollments(truth, course_id, {"active", "invited"})
        if e["type"] != "StudentViewEnrollment"
    }
    assert [u["id"] for u in users] and {u["id"] for u in users} == expected
    assert len(users) == len({u["id"] for u in users})  # one object per user
    assert "Test Student" not in {u["name"] for u in users}
    assert users == sorted(users, key=lambda u: (u["sortable_name"].casefold(), u["id"]))
    truth_users = {u["id"]: u for u in truth["users"]}
    for user in users:
        assert user["email"] == truth_users[user["id"]]["email"]
        assert user["enrollments"] and all(e["user_id"] == user["id"] for e in user["enrollments"])
    with_test, _ = get_all(sim, token, f"/courses/{course_id}/users", {"include[]": "test_student"})
    assert "Test Student" in {u["name"] for u in with_test}
    only_test = api(
        sim, token, f"/courses/{course_id}/users", params={"enrollment_type[]": "student_view"}
    ).json()
    assert [u["name"] for u in only_test] == ["Test Student"]
    teachers = api(sim, token, f"/courses/{course_id}/users", params={"enrollment_type[]": "teacher"}).json()
    assert {u["id"] for u in teachers} == {
        e["user_id"]
        for e in course_enrollments(truth, course_id, {"active"})
        if e["type"] == "TeacherEnrollment"
    }
    enrollments = api(
        sim, token, f"/courses/{course_id}/enrollments", params={"type[]": "StudentViewEnrollment"}
    )
    assert [e["type"] for e in enrollments.json()] == ["StudentViewEnrollment"]


def test_roles_and_sections(sim: RunningSimulator, token: str, truth: dict[str, Any]) -> None:
    roles, _ = get_all(sim, token, "/accounts/1/roles")
    by_label = {r["label"]: r for r in roles}
    assert by_label["Lab Student"]["base_role_type"] == "StudentEnrollment"
    assert by_label["Lab Student"]["workflow_state"] == "active"
    assert by_label["Student"]["workflow_state"] == "built_in" and by_label["Student"]["id"] == 3
    sub_roles, _ = get_all(sim, token, "/accounts/2/roles")
    assert "Lab Student" not in {r["label"] for r in sub_roles}
    inherited, _ = get_all(sim, token, "/accounts/2/roles", {"show_inherited": "true"})
    assert "Lab Student" in {r["label"] for r in inherited}

    sections, rels = get_all(sim, token, "/courses/103/sections", {"include[]": "total_students"})
    assert "last" in rels
    expected = [s for s in truth["sections"] if s["course_id"] == 103]
    assert sorted(s["id"] for s in sections) == sorted(s["id"] for s in expected)
    for section in sections:
        students = {
            e["user_id"]
            for e in truth["enrollments"]
            if e["course_section_id"] == section["id"]
            and e["type"] == "StudentEnrollment"
            and e["enrollment_state"] in {"active", "invited"}
        }
        assert section["total_students"] == len(students)


def test_sis_id_references(sim: RunningSimulator, token: str, truth: dict[str, Any]) -> None:
    course = next(c for c in truth["courses"] if c["sis_course_id"] and c["workflow_state"] == "available")
    by_sis = api(sim, token, f"/courses/sis_course_id:{course['sis_course_id']}/sections").json()
    assert {s["course_id"] for s in by_sis} == {course["id"]}
    section = next(s for s in truth["sections"] if s["sis_section_id"])
    assert (
        api(sim, token, f"/sections/sis_section_id:{section['sis_section_id']}").json()["id"] == section["id"]
    )
    assert api(sim, token, "/courses/sis_course_id:NOPE/users").status_code == 404
    strings = api(
        sim, token, "/sections/1001", headers={"Accept": "application/json+canvas-string-ids"}
    ).json()
    assert strings["id"] == "1001" and isinstance(strings["course_id"], str)


def test_assignments_and_grade_passback(sim: RunningSimulator, token: str, truth: dict[str, Any]) -> None:
    course_id = 104
    student = next(
        e for e in course_enrollments(truth, course_id, {"active"}) if e["type"] == "StudentEnrollment"
    )
    url = f"{sim.url}/api/v1/courses/{course_id}/assignments"
    auth = {"Authorization": f"Bearer {token}"}
    created = requests.post(
        url,
        data={
            "assignment[name]": "Midterm",
            "assignment[points_possible]": "20",
            "assignment[submission_types][]": "on_paper",
        },
        headers=auth,
        timeout=TIMEOUT,
    )
    assert created.status_code == 201
    assignment = created.json()
    assert assignment["published"] is False and assignment["workflow_state"] == "unpublished"
    assert assignment["points_possible"] == 20 and assignment["submission_types"] == ["on_paper"]
    published = requests.post(
        url, json={"assignment": {"name": "Final", "published": True}}, headers=auth, timeout=TIMEOUT
    ).json()
    assert published["published"] is True
    flat = requests.post(
        url,
        json={"assignment[name]": "Quiz", "assignment[grading_type]": "pass_fail"},
        headers=auth,
        timeout=TIMEOUT,
    )
    assert flat.status_code == 201 and flat.json()["grading_type"] == "pass_fail"
    missing_name = requests.post(
        url, data={"assignment[points_possible]": "1"}, headers=auth, timeout=TIMEOUT
    )
    assert missing_name.status_code == 400
    listed = api(sim, token, f"/courses/{course_id}/assignments").json()
    assert [a["name"] for a in listed] == ["Midterm", "Final", "Quiz"]

    sub_url = f"{url}/{assignment['id']}/submissions/{student['user_id']}"
    before = requests.get(sub_url, headers=auth, timeout=TIMEOUT).json()
    assert before["workflow_state"] == "unsubmitted" and before["score"] is None
    graded = requests.put(sub_url, data={"submission[posted_grade]": "17.5"}, headers=auth, timeout=TIMEOUT)
    assert graded.status_code == 200
    assert (graded.json()["score"], graded.json()["grade"], graded.json()["workflow_state"]) == (
        17.5,
        "17.5",
        "graded",
    )
    percent = requests.put(sub_url, data={"submission[posted_grade]": "50%"}, headers=auth, timeout=TIMEOUT)
    assert percent.json()["score"] == 10
    assert requests.get(sub_url, headers=auth, timeout=TIMEOUT).json()["score"] == 10
    bad = requests.put(sub_url, data={"submission[posted_grade]": "lots"}, headers=auth, timeout=TIMEOUT)
    assert bad.status_code == 400 and set(bad.json()) == {"error"}
    outsider = next(
        u["id"]
        for u in truth["users"]
        if not any(e["user_id"] == u["id"] and e["course_id"] == course_id for e in truth["enrollments"])
    )
    denied = requests.put(
        f"{url}/{assignment['id']}/submissions/{outsider}",
        data={"submission[posted_grade]": "1"},
        headers=auth,
        timeout=TIMEOUT,
    )
    assert denied.status_code == 401
    assert denied.json() == {
        "status": "unauthorized",
        "errors": [{"message": "user not authorized to perform that action"}],
    }
    users = {u["id"]: u for u in truth["users"]}
    with_sis = next(
        e
        for e in course_enrollments(truth, course_id, {"active"})
        if e["type"] == "StudentEnrollment" and users[e["user_id"]]["sis_user_id"]
    )
    sis_url = f"{url}/{assignment['id']}/submissions/sis_user_id:{users[with_sis['user_id']]['sis_user_id']}"
    assert requests.get(sis_url, headers=auth, timeout=TIMEOUT).json()["user_id"] == with_sis["user_id"]
    assert api(sim, token, f"/courses/{course_id}/live_assessments/7/results").status_code == 404


def test_live_assessment_results_are_seeded_filtered_and_paginated(
    sim: RunningSimulator, token: str, truth: dict[str, Any]
) -> None:
    assessments = truth["live_assessments"]
    assert len(assessments) >= 2 and all(a["results"] for a in assessments)
    courses = {c["id"]: c for c in truth["courses"]}
    for assessment in assessments:
        assert courses[assessment["course_id"]]["workflow_state"] == "available"
        active_students = {
            e["user_id"]
            for e in course_enrollments(truth, assessment["course_id"], {"active"})
            if e["type"] == "StudentEnrollment"
        }
        assert {int(r["links"]["user"]) for r in assessment["results"]} <= active_students
        assert {r["passed"] for r in assessment["results"]} == {True, False}
    first = assessments[0]
    path = f"/courses/{first['course_id']}/live_assessments/{first['id']}/results"
    pages: list[list[dict[str, Any]]] = []
    response = api(sim, token, path, params={"per_page": 10})
    while True:
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"results"}  # an object, not a bare array
        pages.append(body["results"])
        next_url = response.links.get("next", {}).get("url")
        if not next_url:
            break
        response = requests.get(next_url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    assert len(pages) == -(-len(first["results"]) // 10) >= 3
    assert [r for page in pages for r in page] == first["results"]
    result = first["results"][0]
    assert set(result) == {"id", "passed", "assessed_at", "links"} and isinstance(result["id"], str)
    assert result["links"]["assessment"] == str(first["id"])
    user = result["links"]["user"]
    mine = api(sim, token, path, params={"user_id": user}).json()["results"]
    assert mine == [r for r in first["results"] if r["links"]["user"] == user]
    assert api(sim, token, path, params={"user_id": "1"}).json() == {"results": []}
    other_course = next(c for c in courses if c != first["course_id"])
    elsewhere = f"/courses/{other_course}/live_assessments/{first['id']}/results"
    assert api(sim, token, elsewhere).status_code == 404
    assert api(sim, token, f"/courses/{first['course_id']}/live_assessments/x1/results").status_code == 404


# --------------------------------------------------------------------------------- admin: faults, stats
def test_fault_injection(small_sim: RunningSimulator) -> None:
    access = small_sim.create_token()["access_token"]
    fault = {"status": 500, "path_regex": r"/api/v1/courses/\d+/enrollments", "count": 2}
    assert requests.post(f"{small_sim.url}/_sim/faults", json=fault, timeout=TIMEOUT).status_code == 201
    assert api(small_sim, access, "/courses/101/sections").status_code == 200
    for _ in range(2):
        failed = api(small_sim, access, "/courses/101/enrollments")
        assert failed.status_code == 500
        assert failed.json() == {
            "errors": [{"message": "An error occurred.", "error_code": "internal_server_error"}],
            "error_report_id": 12345,
        }
    assert api(small_sim, access, "/courses/101/enrollments").status_code == 200
    requests.post(f"{small_sim.url}/_sim/faults", json={**fault, "count": 5}, timeout=TIMEOUT)
    requests.delete(f"{small_sim.url}/_sim/faults", timeout=TIMEOUT)
    assert api(small_sim, access, "/courses/101/enrollments").status_code == 200
    throttle = {"status": 403, "path_regex": "/api/v1/accounts", "kind": "throttle"}
    requests.post(f"{small_sim.url}/_sim/faults", json=throttle, timeout=TIMEOUT)
    throttled = api(small_sim, access, "/accounts")
    assert throttled.status_code == 403 and throttled.headers["X-Rate-Limit-Remaining"] == "0.0"
    assert "Rate Limit Exceeded" in throttled.text


def test_stats_count_api_and_oauth_requests(small_sim: RunningSimulator) -> None:
    requests.post(f"{small_sim.url}/_sim/stats/reset", timeout=TIMEOUT)
    _, tokens = oauth_flow(small_sim)
    for _ in range(3):
        api(small_sim, tokens["access_token"], "/courses/101/enrollments")
    api(small_sim, tokens["access_token"], "/courses/sis_course_id:X/users")
    stats = requests.get(f"{small_sim.url}/_sim/stats", timeout=TIMEOUT).json()
    assert stats["by_route"] == {
        "GET /login/oauth2/auth": 1,
        "POST /login/oauth2/token": 1,
        "GET /api/v1/courses/:course_id/enrollments": 3,
        "GET /api/v1/courses/:course_id/users": 1,
    }
    assert stats["requests_total"] == 6
    assert stats["costed_requests"] == 4  # the authenticated API requests (the bucket charges them)
    assert stats["peak_in_flight"] == 1  # one after another
    reset = requests.post(f"{small_sim.url}/_sim/stats/reset", timeout=TIMEOUT).json()
    assert reset == {
        "requests_total": 0,
        "by_route": {},
        "throttled_total": 0,
        "throttled_by_route": {},
        "faults_total": {"error": 0, "throttle": 0, "timeout": 0, "reset": 0},
        "costed_requests": 0,
        "request_cost_total": 0.0,
        "latency_seconds_total": 0.0,
        "peak_in_flight": 0,
    }


def test_concurrent_requests(sim: RunningSimulator, token: str, truth: dict[str, Any]) -> None:
    results: dict[int, int] = {}
    errors: list[BaseException] = []

    def fetch(course_id: int) -> None:
        try:
            items, _ = get_all(sim, token, f"/courses/{course_id}/enrollments", {"per_page": 5})
            results[course_id] = len(items)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(cid,)) for cid in range(110, 122)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for course_id, count in results.items():
        assert count == len(course_enrollments(truth, course_id, {"active", "invited", "inactive"}))


# ------------------------------------------------------------------------------- canvasapi fidelity
@pytest.mark.filterwarnings("ignore:Canvas may respond unexpectedly")
def test_canvasapi_library_pages_through_everything(
    sim: RunningSimulator, token: str, truth: dict[str, Any]
) -> None:
    from canvasapi import Canvas
    from canvasapi.exceptions import Unauthorized

    canvas = Canvas(sim.url, token)
    account = canvas.get_account(1)
    assert account.name == "Demo University"
    courses = list(account.get_courses(per_page=7))
    assert sorted(c.id for c in courses) == [c["id"] for c in truth["courses"]]
    course = next(c for c in courses if c.id == 110)
    sections = list(course.get_sections(per_page=1))
    assert sorted(s.id for s in sections) == sorted(
        s["id"] for s in truth["sections"] if s["course_id"] == 110
    )
    enrollments = list(course.get_enrollments(per_page=4))
    expected = course_enrollments(truth, 110, {"active", "invited", "inactive"})
    assert [e.id for e in enrollments] == [e["id"] for e in expected]
    active = list(course.get_enrollments(state=["active"], type=["StudentEnrollment"]))
    assert len(active) == len(
        [e for e in course_enrollments(truth, 110, {"active"}) if e["type"] == "StudentEnrollment"]
    )
    with pytest.raises(Unauthorized):  # canvasapi calls search_users, a scope the roster key lacks
        list(course.get_users())
    wider = sim.create_token(scopes=[*DEFAULT_SCOPES, SEARCH_USERS_SCOPE])["access_token"]
    wide_courses = Canvas(sim.url, wider).get_account(1).get_courses(search_term=course.course_code)
    wide_course = next(c for c in wide_courses if c.id == 110)
    users = list(wide_course.get_users(enrollment_type=["student"], per_page=9))
    assert {u.id for u in users} == {
        e["user_id"]
        for e in course_enrollments(truth, 110, {"active", "invited"})
        if e["type"] == "StudentEnrollment"
    }
    roles = list(account.get_roles())
    assert "Lab Student" in {r.label for r in roles}


# ----------------------------------------------------------------------------------------------- CLI
def test_command_line_prints_url_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "rostersync_local.canvas_sim", "--port", "0", "--courses", "5", "--seed", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = json.loads(line)["canvas_url"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert requests.get(f"{url}/_sim/health", timeout=TIMEOUT).json() == {"status": "ok"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
