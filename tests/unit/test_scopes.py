import pytest

from rostersync.canvas.scopes import (
    MANIFEST,
    STANDARD_KEY_SCOPES,
    Endpoint,
    declared_endpoint,
    required_scopes,
)
from rostersync_cli.main import main


def test_roster_features_stay_inside_the_seventeen_scopes_institutions_grant() -> None:
    assert len(STANDARD_KEY_SCOPES) == 17
    assert set(required_scopes()) <= STANDARD_KEY_SCOPES


def test_each_endpoint_is_declared_once() -> None:
    assert len({endpoint.scope for endpoint in MANIFEST}) == len(MANIFEST)


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/api/v1/accounts", "/api/v1/accounts"),
        ("GET", "/api/v1/accounts/1", "/api/v1/accounts/:id"),
        ("GET", "/api/v1/accounts/self", "/api/v1/accounts/:id"),
        ("GET", "/api/v1/accounts/1/courses", "/api/v1/accounts/:account_id/courses"),
        ("GET", "/api/v1/courses/sis_course_id:A%2FB/enrollments", "/api/v1/courses/:course_id/enrollments"),
    ],
)
def test_concrete_paths_match_their_scope(method: str, path: str, route: str) -> None:
    endpoint = declared_endpoint(method, path)
    assert endpoint is not None and endpoint.route == route


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/accounts"),
        ("GET", "/api/v1/courses/1/assignments/1"),
        ("GET", "/api/v1/courses/1"),
        ("DELETE", "/api/v1/courses/1/enrollments"),
        ("GET", "/api/v1/courses/1/enrollments/extra"),
    ],
)
def test_anything_else_is_undeclared(method: str, path: str) -> None:
    assert declared_endpoint(method, path) is None


def test_paths_escape_ids() -> None:
    assert Endpoint("GET", "/api/v1/courses/:course_id/users").path(course_id="sis_course_id:A/B") == (
        "/api/v1/courses/sis_course_id%3AA%2FB/users"
    )


def test_the_cli_prints_the_scopes_one_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scopes"]) == 0
    assert capsys.readouterr().out.splitlines() == required_scopes()
