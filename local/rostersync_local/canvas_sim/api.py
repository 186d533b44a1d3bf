"""Handlers of the 17 ``/api/v1`` endpoints in the roster-sync developer key's scope list."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from .config import SimulatorConfig
from .grading import GradeError, interpret_grade
from .model import ROOT_ACCOUNT_ID, Account, Course, Enrollment, Institution, Section, User
from .pagination import Page, bookmarked, numbered
from .serialize import JsonDict, Serializer, iso
from .state import Assignment, Grant, SimulatorState, Submission
from .web import (
    HttpError,
    bad_request,
    json_response,
    list_param,
    not_found,
    request_params,
    truthy,
    unauthorized,
)

ENROLLMENT_TYPE_ALIASES = {
    "student": "StudentEnrollment",
    "teacher": "TeacherEnrollment",
    "ta": "TaEnrollment",
    "observer": "ObserverEnrollment",
    "designer": "DesignerEnrollment",
    "student_view": "StudentViewEnrollment",
}
STUDENT_TYPES = frozenset({"StudentEnrollment", "StudentViewEnrollment"})
GRADABLE_STATES = frozenset({"active", "invited", "inactive"})
# Grades in an unpublished or a (hard-)concluded course are refused with Canvas's generic "user not
# authorized" 401, the same answer as for a student who is not assigned.
CLOSED_TO_GRADING = frozenset({"created", "claimed", "completed"})
GRADING_TYPES = frozenset({"pass_fail", "percent", "letter_grade", "gpa_scale", "points", "not_graded"})
SUBMISSION_TYPES = frozenset(
    {"online_quiz", "none", "on_paper", "discussion_topic", "external_tool", "online_upload",
     "online_text_entry", "online_url", "media_recording", "student_annotation", "not_graded"}
)  # fmt: skip
ALL_USERS = ("user", "student", "teacher", "admin", "observer", "unenrolled")
HELP_LINKS: JsonDict = {
    "help_link_name": "Help",
    "help_link_icon": "help",
    "custom_help_links": [],
    "default_help_links": [
        {"id": "instructor_question", "text": "Ask Your Instructor a Question",
         "subtext": "Questions are submitted to your instructor", "url": "#teacher_feedback",
         "type": "default", "available_to": ["student"], "is_featured": False, "is_new": False,
         "feature_headline": ""},
        {"id": "search_the_canvas_guides", "text": "Search the Canvas Guides",
         "subtext": "Find answers to common questions",
         "url": "https://community.canvaslms.com/t5/Canvas/ct-p/canvas", "type": "default",
         "available_to": list(ALL_USERS), "is_featured": True, "is_new": False, "feature_headline": ""},
        {"id": "report_a_problem", "text": "Report a Problem",
         "subtext": "If Canvas misbehaves, tell us about it", "url": "#create_ticket", "type": "default",
         "available_to": list(ALL_USERS), "is_featured": False, "is_new": False, "feature_headline": ""},
    ],
}  # fmt: skip


@dataclass
class ApiContext:
    """One authenticated API request."""

    request: Request
    state: SimulatorState
    grant: Grant
    ser: Serializer
    string_ids: bool = False
    item_count: int = 0  # items in the returned list (the throttle's per-item request cost)

    @property
    def inst(self) -> Institution:
        return self.state.institution

    @property
    def config(self) -> SimulatorConfig:
        return self.state.config

    def list(self, name: str) -> list[str]:
        return list_param(self.request.args, name)

    def arg(self, name: str) -> str | None:
        return self.request.args.get(name)

    def includes(self, name: str = "include") -> set[str]:
        return set(self.list(name))

    def json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        if isinstance(data, list):
            self.item_count = len(data)
        return json_response(data, status, headers, string_ids=self.string_ids)

    def page(self, page: Page[Any], render: Callable[[Any], Any]) -> Response:
        return self.json([render(item) for item in page.items], headers=page.headers)


# ------------------------------------------------------------------------------------------ lookups
def _account(ctx: ApiContext, ref: str) -> Account:
    account = ctx.inst.find_account(ref)
    if account is None or account.workflow_state == "deleted":
        raise not_found()
    return account


def _course(ctx: ApiContext, ref: str) -> Course:
    course = ctx.inst.find_course(ref)
    if course is None or course.db_state == "deleted":
        raise not_found()
    return course


def _user_ref(ctx: ApiContext, ref: str) -> User:
    user = ctx.inst.find_user(ref)
    if user is None:
        raise not_found()
    return user


def _int_list(values: Iterable[str]) -> set[int]:
    return {int(v) for v in values if v.isascii() and v.isdigit()}


def _search_needle(ctx: ApiContext, minimum: int) -> str | None:
    """The casefolded ``search_term``, if given; Canvas refuses one shorter than ``minimum`` characters."""
    search = ctx.arg("search_term")
    if search is None:
        return None
    if len(search) < minimum:
        raise bad_request(
            {"errors": [{"message": f"search_term of {minimum} or more characters is required"}]}
        )
    return search.casefold()


# ----------------------------------------------------------------------------------------- accounts
def list_accounts(ctx: ApiContext) -> Response:
    """Accounts the API user administers: the root account (sub-accounts come via the root)."""
    root = ctx.inst.accounts_by_id[ROOT_ACCOUNT_ID]
    includes = ctx.includes()
    return ctx.page(numbered(ctx.request, ctx.config, [root]), lambda a: ctx.ser.account(a, includes))


def course_accounts(ctx: ApiContext) -> Response:
    """Accounts reachable through the user's teacher/TA/designer enrollments: none for the admin."""
    accounts: list[Account] = []
    page = bookmarked(ctx.request, ctx.config, accounts, lambda a: a.id)
    return ctx.page(page, ctx.ser.course_account)


def get_account(ctx: ApiContext, id: str) -> Response:
    account = _account(ctx, id)
    return ctx.json(ctx.ser.account(account, ctx.includes("includes") | ctx.includes()))


def help_links(ctx: ApiContext, account_id: str) -> Response:
    account = _account(ctx, account_id)
    return ctx.json(HELP_LINKS if account.id == ROOT_ACCOUNT_ID else {})


# ------------------------------------------------------------------------------------------ courses
def _course_sort_key(ctx: ApiContext, sort: str | None) -> Callable[[Course], Any]:
    if sort == "course_name":
        return lambda c: ((c.nickname or c.name).casefold(), c.id)
    if sort == "sis_course_id":
        return lambda c: (c.sis_course_id is None, c.sis_course_id or "", c.id)
    if sort == "account_name":
        return lambda c: (ctx.inst.accounts_by_id[c.account_id].name.casefold(), c.id)
    return lambda c: c.id


def account_courses(ctx: ApiContext, account_id: str) -> Response:
    account = _account(ctx, account_id)
    allowed = ctx.inst.account_and_descendants(account.id)
    by_sub = ctx.list("by_subaccounts")
    if by_sub:
        allowed &= set().union(*(ctx.inst.account_and_descendants(i) for i in _int_list(by_sub)))
    courses = [c for c in ctx.inst.courses if c.account_id in allowed]
    states = set(ctx.list("state"))
    if not states:
        courses = [c for c in courses if c.db_state != "deleted"]
    elif "all" not in states:
        courses = [c for c in courses if c.db_state in states]
    published = ctx.arg("published")
    if published not in (None, ""):
        wanted = truthy(published)
        courses = [c for c in courses if (c.db_state in {"available", "completed"}) == wanted]
    completed = ctx.arg("completed")
    if completed not in (None, ""):
        wanted = truthy(completed)
        courses = [c for c in courses if ctx.ser.course_concluded(c) == wanted]
    term_ref = ctx.arg("enrollment_term_id")
    if term_ref:
        term_id = _term_id(ctx, term_ref)
        courses = [c for c in courses if c.term_id == term_id]
    needle = _search_needle(ctx, 3)
    if needle is not None:
        courses = [
            c
            for c in courses
            if needle in (c.nickname or c.name).casefold()
            or needle in c.course_code.casefold()
            or needle == str(c.id)
            or (c.sis_course_id is not None and needle in c.sis_course_id.casefold())
        ]
    courses.sort(key=_course_sort_key(ctx, ctx.arg("sort")), reverse=ctx.arg("order") == "desc")
    includes = ctx.includes()
    page = numbered(ctx.request, ctx.config, courses, include_last=False)
    return ctx.page(page, lambda c: _course_json(ctx, c, includes))


def _term_id(ctx: ApiContext, ref: str) -> int:
    if ref.startswith("sis_term_id:"):
        sis = ref.removeprefix("sis_term_id:")
        return next((t.id for t in ctx.inst.terms if t.sis_term_id == sis), -1)
    return int(ref) if ref.isascii() and ref.isdigit() else -1


def _course_json(ctx: ApiContext, course: Course, includes: set[str]) -> JsonDict:
    data = ctx.ser.course(course, includes)
    if "account_name" in includes:
        data["account_name"] = ctx.inst.accounts_by_id[course.account_id].name
    return data


def account_course(ctx: ApiContext, account_id: str, id: str) -> Response:
    account = _account(ctx, account_id)
    includes = ctx.includes()
    course = ctx.inst.find_course(id)
    if course is None or course.account_id not in ctx.inst.account_and_descendants(account.id):
        raise not_found()
    if course.db_state == "deleted" and "all_courses" not in includes:
        raise not_found()
    return ctx.json(_course_json(ctx, course, includes))


# ---------------------------------------------------------------------------- course users/enrollments
def _user_sort_key(sort: str | None) -> Callable[[User], Any]:
    if sort == "email":
        return lambda u: (u.email is None, (u.email or "").casefold(), u.id)
    if sort == "sis_id":
        return lambda u: (u.sis_user_id is None, u.sis_user_id or "", u.id)
    return lambda u: (u.sortable_name.casefold(), u.id)


def course_users(ctx: ApiContext, course_id: str) -> Response:
    course = _course(ctx, course_id)
    includes = ctx.includes()
    states = set(ctx.list("enrollment_state")) or {"active", "invited"}
    if truthy(ctx.arg("include_inactive")):
        states.add("inactive")
    types = {ENROLLMENT_TYPE_ALIASES.get(t, t) for t in ctx.list("enrollment_type")}
    show_test_student = "test_student" in includes or "StudentViewEnrollment" in types
    role_id = ctx.arg("enrollment_role_id")
    user_filter = _int_list([*ctx.list("user_ids"), ctx.arg("user_id") or ""])
    matched: dict[int, list[Enrollment]] = {}
    for enrollment in ctx.inst.enrollments_by_course.get(course.id, []):
        if ctx.ser.enrollment_state(enrollment) not in states:
            continue
        if types and enrollment.type not in types:
            continue
        if enrollment.type == "StudentViewEnrollment" and not show_test_student:
            continue
        if role_id and str(enrollment.role_id) != role_id:
            continue
        if user_filter and enrollment.user_id not in user_filter:
            continue
        matched.setdefault(enrollment.user_id, []).append(enrollment)
    users = [ctx.inst.users_by_id[user_id] for user_id in matched]
    needle = _search_needle(ctx, 2)
    if needle is not None:
        users = [
            u
            for u in users
            if needle in u.name.casefold()
            or needle in u.login_id.casefold()
            or (u.sis_user_id is not None and needle in u.sis_user_id.casefold())
            or (u.email is not None and needle in u.email.casefold())
        ]
    users.sort(key=_user_sort_key(ctx.arg("sort")), reverse=ctx.arg("order") == "desc")

    def render(user: User) -> JsonDict:
        data = ctx.ser.user(user, email=True)
        if "enrollments" in includes:
            data["enrollments"] = [ctx.ser.enrollment(e, with_user=False) for e in matched[user.id]]
        if "avatar_url" in includes:
            data["avatar_url"] = f"{ctx.ser.base_url}/images/messages/avatar-50.png"
        if "uuid" in includes:
            data["uuid"] = f"{user.id:040d}"
        return data

    return ctx.page(numbered(ctx.request, ctx.config, users, include_last=False), render)


def course_enrollments(ctx: ApiContext, course_id: str) -> Response:
    course = _course(ctx, course_id)
    states = set(ctx.list("state")) or {"active", "invited", "creation_pending", "inactive"}
    types = set(ctx.list("type"))
    roles = set(ctx.list("role"))
    role_ids = _int_list(ctx.list("role_id"))
    sis_users = set(ctx.list("sis_user_id"))
    sis_sections = set(ctx.list("sis_section_id"))
    user_ref = ctx.arg("user_id")
    user_id = _user_ref(ctx, user_ref).id if user_ref else None
    inst = ctx.inst
    enrollments = []
    for enrollment in inst.enrollments_by_course.get(course.id, []):
        if ctx.ser.enrollment_state(enrollment) not in states:
            continue
        if types and enrollment.type not in types:
            continue
        if roles and inst.roles_by_id[enrollment.role_id].name not in roles:
            continue
        if role_ids and enrollment.role_id not in role_ids:
            continue
        if user_id is not None and enrollment.user_id != user_id:
            continue
        if sis_users and inst.users_by_id[enrollment.user_id].sis_user_id not in sis_users:
            continue
        if sis_sections and inst.sections_by_id[enrollment.section_id].sis_section_id not in sis_sections:
            continue
        enrollments.append(enrollment)
    enrollments.sort(key=lambda e: e.id)
    page = bookmarked(ctx.request, ctx.config, enrollments, lambda e: e.id)
    return ctx.page(page, ctx.ser.enrollment)


# -------------------------------------------------------------------------------------------- roles
def account_roles(ctx: ApiContext, account_id: str) -> Response:
    account = _account(ctx, account_id)
    states = set(ctx.list("state")) or {"active"}
    visible_accounts = {account.id}
    if truthy(ctx.arg("show_inherited")):
        parent = account.parent_account_id
        while parent is not None:
            visible_accounts.add(parent)
            parent = ctx.inst.accounts_by_id[parent].parent_account_id
    roles = [
        r
        for r in ctx.inst.roles
        if (r.workflow_state == "built_in" and "active" in states)
        or (r.workflow_state in states and r.account_id in visible_accounts)
    ]
    return ctx.page(numbered(ctx.request, ctx.config, roles), ctx.ser.role)


# ----------------------------------------------------------------------------------------- sections
def _active_sections(ctx: ApiContext, course: Course) -> list[Section]:
    sections = [s for s in ctx.inst.sections_by_course.get(course.id, []) if s.workflow_state != "deleted"]
    return sorted(sections, key=lambda s: (s.name.casefold(), s.id))


def course_sections(ctx: ApiContext, course_id: str) -> Response:
    course = _course(ctx, course_id)
    includes = ctx.includes()
    sections = _active_sections(ctx, course)
    search = ctx.arg("search_term")
    if search:
        sections = [s for s in sections if search.casefold() in s.name.casefold()]
    if truthy(ctx.arg("all")):
        return ctx.json([ctx.ser.section(s, includes) for s in sections])
    return ctx.page(numbered(ctx.request, ctx.config, sections), lambda s: ctx.ser.section(s, includes))


def course_section(ctx: ApiContext, course_id: str, id: str) -> Response:
    course = _course(ctx, course_id)
    section = ctx.inst.find_section(id)
    if section is None or section.course_id != course.id or section.workflow_state == "deleted":
        raise not_found()
    return ctx.json(ctx.ser.section(section, ctx.includes()))


def section(ctx: ApiContext, id: str) -> Response:
    found = ctx.inst.find_section(id)
    if found is None or found.workflow_state == "deleted":
        raise not_found()
    if ctx.inst.courses_by_id[found.course_id].db_state == "deleted":
        raise not_found()
    return ctx.json(ctx.ser.section(found, ctx.includes()))


# -------------------------------------------------------------------------------------- assignments
def _assignment_json(ctx: ApiContext, a: Assignment) -> JsonDict:
    base = ctx.ser.base_url
    return {
        "id": a.id,
        "name": a.name,
        "description": a.description,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "due_at": a.due_at,
        "lock_at": a.lock_at,
        "unlock_at": a.unlock_at,
        "has_overrides": False,
        "course_id": a.course_id,
        "html_url": f"{base}/courses/{a.course_id}/assignments/{a.id}",
        "submissions_download_url": f"{base}/courses/{a.course_id}/assignments/{a.id}/submissions?zip=1",
        "assignment_group_id": 3000 + a.course_id,
        "due_date_required": False,
        "allowed_extensions": a.allowed_extensions,
        "max_name_length": 255,
        "turnitin_enabled": False,
        "vericite_enabled": False,
        "grade_group_students_individually": False,
        "peer_reviews": False,
        "automatic_peer_reviews": False,
        "position": a.position,
        "points_possible": a.points_possible,
        "grading_type": a.grading_type,
        "grading_standard_id": None,
        "submission_types": a.submission_types,
        "group_category_id": None,
        "published": a.published,
        "unpublishable": True,
        "workflow_state": "published" if a.published else "unpublished",
        "only_visible_to_overrides": a.only_visible_to_overrides,
        "locked_for_user": False,
        "post_to_sis": a.post_to_sis,
        "sis_assignment_id": a.sis_assignment_id,
        "integration_id": a.integration_id,
        "integration_data": a.integration_data,
        "omit_from_final_grade": a.omit_from_final_grade,
        "hide_in_gradebook": a.hide_in_gradebook,
        "muted": a.post_manually,
        "post_manually": a.post_manually,
        "anonymous_grading": False,
        "moderated_grading": False,
        "intra_group_peer_reviews": False,
        "anonymize_students": False,
        "allowed_attempts": a.allowed_attempts,
        "needs_grading_count": 0,
        "is_quiz_assignment": False,
        "can_duplicate": True,
        "workflow_state_for_user": None,
    }


def list_assignments(ctx: ApiContext, course_id: str) -> Response:
    course = _course(ctx, course_id)
    assignments = [a for a in ctx.state.assignments.values() if a.course_id == course.id]
    wanted_ids = ctx.list("assignment_ids")
    if len(wanted_ids) > 100:
        raise bad_request({"message": "Request contains too many assignment_ids.  Max 100"})
    if wanted_ids:
        ids = _int_list(wanted_ids)
        assignments = [a for a in assignments if a.id in ids]
    search = ctx.arg("search_term")
    if search:
        assignments = [a for a in assignments if search.casefold() in a.name.casefold()]
    order_by = ctx.arg("order_by")
    if order_by == "name":
        assignments.sort(key=lambda a: (a.name.casefold(), a.id))
    elif order_by == "due_at":
        assignments.sort(key=lambda a: (a.due_at is None, a.due_at or "", a.id))
    else:
        assignments.sort(key=lambda a: (a.position, a.id))
    page = numbered(ctx.request, ctx.config, assignments)
    return ctx.page(page, lambda a: _assignment_json(ctx, a))


def _field_error(field: str, kind: str, message: str) -> HttpError:
    return bad_request({"errors": {field: [{"attribute": field, "type": kind, "message": message}]}})


def _timestamp(value: Any, field: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise _field_error(field, "invalid", "Invalid datetime") from exc
    if parsed.tzinfo is None:
        raise _field_error(field, "invalid", "Invalid datetime (no time zone)")
    return iso(parsed.timestamp())


def _int_field(fields: dict[str, Any], name: str, default: int) -> int:
    value = fields.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise _field_error(name, "not_a_number", "is not a number") from exc


def create_assignment(ctx: ApiContext, course_id: str) -> Response:
    course = _course(ctx, course_id)
    if course.db_state == "completed":  # a concluded course is read-only
        raise unauthorized()
    raw = request_params(ctx.request).get("assignment")
    fields: dict[str, Any] = raw if isinstance(raw, dict) else {}
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _field_error("name", "blank", "blank")
    points: float | None = None
    if fields.get("points_possible") not in (None, ""):
        try:
            points = float(fields["points_possible"])
        except (TypeError, ValueError) as exc:
            raise _field_error("points_possible", "not_a_number", "is not a number") from exc
    grading_type = str(fields.get("grading_type") or "points")
    if grading_type not in GRADING_TYPES:
        raise _field_error("grading_type", "inclusion", "is not included in the list")
    submission_types = fields.get("submission_types") or ["none"]
    if isinstance(submission_types, str):
        submission_types = [submission_types]
    if not isinstance(submission_types, list) or any(t not in SUBMISSION_TYPES for t in submission_types):
        raise _field_error("submission_types", "invalid", "Invalid submission types")
    sis_id = fields.get("sis_assignment_id") or None
    if sis_id is not None and any(a.sis_assignment_id == str(sis_id) for a in ctx.state.assignments.values()):
        body = {"message": "Assignment with the given sis_source_id already exists"}
        raise HttpError(json_response(body, 409))
    integration_data = fields.get("integration_data") or {}
    if isinstance(integration_data, str):
        try:
            integration_data = json.loads(integration_data)
        except ValueError as exc:
            raise _field_error("integration_data", "invalid", "must be valid JSON") from exc
    if not isinstance(integration_data, dict):
        raise _field_error("integration_data", "invalid", "must be a JSON object")
    now = iso(ctx.state.now())
    existing = [a for a in ctx.state.assignments.values() if a.course_id == course.id]
    extensions = fields.get("allowed_extensions") or []
    assignment = Assignment(
        id=ctx.state.new_assignment_id(),
        course_id=course.id,
        name=name.strip(),
        position=_int_field(fields, "position", len(existing) + 1),
        created_at=now,
        updated_at=now,
        description=fields.get("description"),
        points_possible=points,
        grading_type=grading_type,
        submission_types=list(submission_types),
        allowed_extensions=[extensions] if isinstance(extensions, str) else list(extensions),
        published=truthy(fields.get("published")),
        due_at=_timestamp(fields.get("due_at"), "due_at"),
        lock_at=_timestamp(fields.get("lock_at"), "lock_at"),
        unlock_at=_timestamp(fields.get("unlock_at"), "unlock_at"),
        sis_assignment_id=str(sis_id) if sis_id is not None else None,
        integration_id=fields.get("integration_id") or None,
        integration_data=integration_data,
        omit_from_final_grade=truthy(fields.get("omit_from_final_grade")),
        hide_in_gradebook=truthy(fields.get("hide_in_gradebook")),
        post_to_sis=truthy(fields.get("post_to_sis")),
        only_visible_to_overrides=truthy(fields.get("only_visible_to_overrides")),
        allowed_attempts=_int_field(fields, "allowed_attempts", -1),
    )
    ctx.state.assignments[assignment.id] = assignment
    return ctx.json(_assignment_json(ctx, assignment), status=201)


# -------------------------------------------------------------------------------------- submissions
def _assignment(ctx: ApiContext, course: Course, ref: str) -> Assignment:
    found = ctx.state.assignments.get(int(ref)) if ref.isascii() and ref.isdigit() else None
    if found is None or found.course_id != course.id:
        raise not_found()
    return found


def _is_gradable_student(ctx: ApiContext, course: Course, user: User) -> bool:
    return any(
        e.user_id == user.id and e.type in STUDENT_TYPES and ctx.ser.enrollment_state(e) in GRADABLE_STATES
        for e in ctx.inst.enrollments_by_course.get(course.id, [])
    )


def _submission_json(ctx: ApiContext, a: Assignment, sub: Submission, includes: set[str]) -> JsonDict:
    base = ctx.ser.base_url
    data: JsonDict = {
        "id": sub.id,
        "body": None,
        "url": None,
        "grade": sub.grade,
        "score": sub.score,
        "submitted_at": None,
        "assignment_id": a.id,
        "user_id": sub.user_id,
        "submission_type": None,
        "workflow_state": sub.workflow_state,
        "grade_matches_current_submission": True,
        "graded_at": sub.graded_at,
        "grader_id": sub.grader_id,
        "attempt": None,
        "cached_due_date": a.due_at,
        "excused": sub.excused,
        "late_policy_status": None,
        "points_deducted": None,
        "grading_period_id": None,
        "extra_attempts": None,
        "posted_at": sub.graded_at if sub.graded_at and not a.post_manually else None,
        "redo_request": False,
        "late": False,
        "missing": False,
        "seconds_late": 0,
        "entered_grade": sub.grade,
        "entered_score": sub.score,
        "preview_url": f"{base}/courses/{a.course_id}/assignments/{a.id}/submissions/{sub.user_id}?preview=1",
        "html_url": f"{base}/courses/{a.course_id}/assignments/{a.id}/submissions/{sub.user_id}",
        "anonymous_id": sub.anonymous_id,
    }
    if "submission_comments" in includes:
        data["submission_comments"] = list(sub.comments)
    if "visibility" in includes:
        data["assignment_visible"] = True
    if "user" in includes:
        data["user"] = ctx.ser.user(ctx.inst.users_by_id[sub.user_id])
    if "course" in includes:
        data["course"] = ctx.ser.course(ctx.inst.courses_by_id[a.course_id])
    return data


def get_submission(ctx: ApiContext, course_id: str, assignment_id: str, user_id: str) -> Response:
    course = _course(ctx, course_id)
    assignment = _assignment(ctx, course, assignment_id)
    user = _user_ref(ctx, user_id)
    if not _is_gradable_student(ctx, course, user):
        raise not_found()
    submission = ctx.state.submission(assignment.id, user.id)
    return ctx.json(_submission_json(ctx, assignment, submission, ctx.includes()))


def put_submission(ctx: ApiContext, course_id: str, assignment_id: str, user_id: str) -> Response:
    course = _course(ctx, course_id)
    if course.db_state in CLOSED_TO_GRADING:
        raise unauthorized()
    assignment = _assignment(ctx, course, assignment_id)
    user = _user_ref(ctx, user_id)
    if not _is_gradable_student(ctx, course, user):
        raise unauthorized()
    params = request_params(ctx.request)
    raw_fields, raw_comment = params.get("submission"), params.get("comment")
    fields: dict[str, Any] = raw_fields if isinstance(raw_fields, dict) else {}
    comment: dict[str, Any] = raw_comment if isinstance(raw_comment, dict) else {}
    now = iso(ctx.state.now())
    grader = ctx.grant.user_id
    submission = ctx.state.submission(assignment.id, user.id)
    if "excuse" in fields:
        if truthy(fields["excuse"]):
            submission.excused, submission.grade, submission.score = True, None, None
            submission.workflow_state, submission.graded_at, submission.grader_id = "graded", now, grader
        else:
            submission.excused = False
    if "posted_grade" in fields:
        try:
            grade, score = interpret_grade(
                str(fields["posted_grade"] or ""), assignment.grading_type, assignment.points_possible
            )
        except GradeError as exc:
            raise bad_request({"error": str(exc)}) from exc
        submission.grade, submission.score, submission.excused = grade, score, False
        if grade is None:
            submission.workflow_state, submission.graded_at, submission.grader_id = "unsubmitted", None, None
        else:
            submission.workflow_state, submission.graded_at, submission.grader_id = "graded", now, grader
    text = comment.get("text_comment")
    if text:
        author = ctx.inst.api_user
        submission.comments.append(
            {"id": ctx.state.new_comment_id(), "author_id": author.id, "author_name": author.name,
             "comment": str(text), "created_at": now, "edited_at": None, "media_comment": None}
        )  # fmt: skip
    return ctx.json(_submission_json(ctx, assignment, submission, ctx.includes() | {"submission_comments"}))


# --------------------------------------------------------------------------------- live assessments
def live_assessment_results(ctx: ApiContext, course_id: str, assessment_id: str) -> Response:
    """``{"results": [...]}`` of one of the course's live assessments, oldest first; ``user_id`` filters."""
    course = _course(ctx, course_id)
    numeric = assessment_id.isascii() and assessment_id.isdigit()
    assessment = ctx.inst.live_assessments_by_id.get(int(assessment_id)) if numeric else None
    if assessment is None or assessment.course_id != course.id:
        raise not_found()
    results = assessment.results
    user_ref = ctx.arg("user_id")
    if user_ref:
        results = [r for r in results if str(r.user_id) == user_ref]
    page = numbered(ctx.request, ctx.config, results)
    ctx.item_count = len(page.items)
    body = {"results": [ctx.ser.live_assessment_result(assessment, r) for r in page.items]}
    return ctx.json(body, headers=page.headers)


ApiHandler = Callable[..., Response]

# (method, route as written in the developer key scope, handler) - the order of the scope list.
API_ROUTES: tuple[tuple[str, str, ApiHandler], ...] = (
    ("GET", "/api/v1/accounts", list_accounts),
    ("GET", "/api/v1/course_accounts", course_accounts),
    ("GET", "/api/v1/accounts/:id", get_account),
    ("GET", "/api/v1/accounts/:account_id/help_links", help_links),
    ("GET", "/api/v1/accounts/:account_id/courses", account_courses),
    ("GET", "/api/v1/courses/:course_id/assignments", list_assignments),
    ("POST", "/api/v1/courses/:course_id/assignments", create_assignment),
    ("GET", "/api/v1/accounts/:account_id/courses/:id", account_course),
    ("GET", "/api/v1/courses/:course_id/users", course_users),
    ("GET", "/api/v1/courses/:course_id/enrollments", course_enrollments),
    ("GET", "/api/v1/courses/:course_id/live_assessments/:assessment_id/results", live_assessment_results),
    ("GET", "/api/v1/accounts/:account_id/roles", account_roles),
    ("GET", "/api/v1/courses/:course_id/sections", course_sections),
    ("GET", "/api/v1/courses/:course_id/sections/:id", course_section),
    ("GET", "/api/v1/sections/:id", section),
    ("GET", "/api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id", get_submission),
    ("PUT", "/api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id", put_submission),
)

DEFAULT_SCOPES: tuple[str, ...] = tuple(f"url:{method}|{route}" for method, route, _ in API_ROUTES)

# Routes Canvas also has for the same actions; each is its own scope, so the default key cannot call them
# (e.g. canvasapi's ``Course.get_users()`` uses ``search_users``).
EXTRA_API_ROUTES: tuple[tuple[str, str, ApiHandler], ...] = (
    ("GET", "/api/v1/courses/:course_id/search_users", course_users),
)
SEARCH_USERS_SCOPE = "url:GET|/api/v1/courses/:course_id/search_users"
