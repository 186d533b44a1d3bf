"""The scope manifest: every Canvas endpoint rostersync calls, declared once as a developer-key scope.

`rostersync scopes` prints these; the OAuth flow requests exactly these; the client refuses to call
anything that is not declared here; a test checks every request the suite makes against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import quote


@dataclass(frozen=True)
class Endpoint:
    method: str
    route: str  # Canvas's route with :params, exactly as in the scope string
    list_key: str | None = None  # a list answer wrapped in an object: the key of the list (pages by it)

    @property
    def scope(self) -> str:
        return f"url:{self.method}|{self.route}"

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        parts = (r"[^/]+" if part.startswith(":") else re.escape(part) for part in self.route.split("/"))
        return re.compile("/".join(parts) + "$")

    def matches(self, method: str, path: str) -> bool:
        return method.upper() == self.method and self._pattern.match(path) is not None

    def path(self, **params: int | str) -> str:
        def fill(part: str) -> str:
            return quote(str(params[part[1:]]), safe="") if part.startswith(":") else part

        return "/".join(fill(part) for part in self.route.split("/"))


LIST_ADMIN_ACCOUNTS = Endpoint("GET", "/api/v1/accounts")
GET_ACCOUNT = Endpoint("GET", "/api/v1/accounts/:id")
GET_HELP_LINKS = Endpoint("GET", "/api/v1/accounts/:account_id/help_links")  # the self-test's token check
LIST_ACCOUNT_ROLES = Endpoint("GET", "/api/v1/accounts/:account_id/roles")
LIST_ACCOUNT_COURSES = Endpoint("GET", "/api/v1/accounts/:account_id/courses")
GET_ACCOUNT_COURSE = Endpoint("GET", "/api/v1/accounts/:account_id/courses/:id")
LIST_COURSE_SECTIONS = Endpoint("GET", "/api/v1/courses/:course_id/sections")
LIST_COURSE_ENROLLMENTS = Endpoint("GET", "/api/v1/courses/:course_id/enrollments")
LIST_COURSE_USERS = Endpoint("GET", "/api/v1/courses/:course_id/users")
LIST_ASSIGNMENTS = Endpoint("GET", "/api/v1/courses/:course_id/assignments")
CREATE_ASSIGNMENT = Endpoint("POST", "/api/v1/courses/:course_id/assignments")
SUBMISSION_ROUTE = "/api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id"
GET_SUBMISSION = Endpoint("GET", SUBMISSION_ROUTE)
GRADE_SUBMISSION = Endpoint("PUT", SUBMISSION_ROUTE)
# Read-back only: rostersync never creates live assessments; their id comes from the caller.
LIST_LIVE_ASSESSMENT_RESULTS = Endpoint(
    "GET", "/api/v1/courses/:course_id/live_assessments/:assessment_id/results", list_key="results"
)

MANIFEST: tuple[Endpoint, ...] = (
    LIST_ADMIN_ACCOUNTS,
    GET_ACCOUNT,
    GET_HELP_LINKS,
    LIST_ACCOUNT_ROLES,
    LIST_ACCOUNT_COURSES,
    GET_ACCOUNT_COURSE,
    LIST_COURSE_SECTIONS,
    LIST_COURSE_ENROLLMENTS,
    LIST_COURSE_USERS,
    LIST_ASSIGNMENTS,
    CREATE_ASSIGNMENT,
    GET_SUBMISSION,
    GRADE_SUBMISSION,
    LIST_LIVE_ASSESSMENT_RESULTS,
)


# The 17 scopes institutions are told to put on the developer key; roster and grade features stay inside them.
STANDARD_KEY_SCOPES = frozenset(
    {
        "url:GET|/api/v1/accounts",
        "url:GET|/api/v1/course_accounts",
        "url:GET|/api/v1/accounts/:id",
        "url:GET|/api/v1/accounts/:account_id/help_links",
        "url:GET|/api/v1/accounts/:account_id/courses",
        "url:GET|/api/v1/courses/:course_id/assignments",
        "url:POST|/api/v1/courses/:course_id/assignments",
        "url:GET|/api/v1/accounts/:account_id/courses/:id",
        "url:GET|/api/v1/courses/:course_id/users",
        "url:GET|/api/v1/courses/:course_id/enrollments",
        "url:GET|/api/v1/courses/:course_id/live_assessments/:assessment_id/results",
        "url:GET|/api/v1/accounts/:account_id/roles",
        "url:GET|/api/v1/courses/:course_id/sections",
        "url:GET|/api/v1/courses/:course_id/sections/:id",
        "url:GET|/api/v1/sections/:id",
        "url:GET|/api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id",
        "url:PUT|/api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id",
    }
)


def required_scopes() -> list[str]:
    return [endpoint.scope for endpoint in MANIFEST]


def declared_endpoint(method: str, path: str) -> Endpoint | None:
    """The manifest entry a concrete request matches, if any."""
    return next((endpoint for endpoint in MANIFEST if endpoint.matches(method, path)), None)
