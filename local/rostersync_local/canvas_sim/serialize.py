"""Canvas JSON shapes for the simulated records (shared by the API and the ground-truth dump)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .model import (
    ROOT_ACCOUNT_ID,
    Account,
    Course,
    Enrollment,
    Institution,
    LiveAssessment,
    LiveAssessmentResult,
    Role,
    Section,
    Term,
    User,
)

JsonDict = dict[str, Any]

# Enrollment states counted by Canvas's `student_enrollments` association (total_students).
COUNTED_STUDENT_STATES = frozenset({"active", "invited", "creation_pending"})

_ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "AccountMembership": (
        "read_roster",
        "manage_grades",
        "view_all_grades",
        "read_sis",
        "manage_role_overrides",
    ),
    "TeacherEnrollment": ("read_roster", "manage_grades", "view_all_grades"),
    "TaEnrollment": ("read_roster", "manage_grades", "view_all_grades"),
    "DesignerEnrollment": ("read_roster",),
    "StudentEnrollment": ("read_roster",),
    "ObserverEnrollment": ("read_roster",),
}
_ALL_PERMISSIONS = ("read_roster", "manage_grades", "view_all_grades", "read_sis", "manage_role_overrides")


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


@dataclass(frozen=True)
class Serializer:
    """Renders records as Canvas does, for one base URL (html_url fields) and one point in time."""

    inst: Institution
    base_url: str
    now: float

    # ----------------------------------------------------------------- accounts
    def account(self, account: Account, includes: Iterable[str] = ()) -> JsonDict:
        data: JsonDict = {
            "id": account.id,
            "name": account.name,
            "workflow_state": account.workflow_state,
            "parent_account_id": account.parent_account_id,
            "root_account_id": account.root_account_id,
            "uuid": account.uuid,
            "default_storage_quota_mb": 500,
            "default_user_storage_quota_mb": 50,
            "default_group_storage_quota_mb": 50,
            "default_time_zone": account.default_time_zone,
            "sis_account_id": account.sis_account_id,
            "integration_id": None,
            "sis_import_id": None,
        }
        if "lti_guid" in includes:
            data["lti_guid"] = f"{account.uuid}:canvas-lms"
        return data

    def course_account(self, account: Account) -> JsonDict:
        return {
            "id": account.id,
            "name": account.name,
            "workflow_state": account.workflow_state,
            "root_account_id": account.root_account_id,
            "parent_account_id": account.parent_account_id,
        }

    def term(self, term: Term) -> JsonDict:
        return {**self.course_term(term), "sis_term_id": term.sis_term_id, "sis_import_id": None}

    def course_term(self, term: Term) -> JsonDict:
        """The term as a course's ``include[]=term`` shows it: without the SIS fields."""
        return {
            "id": term.id,
            "name": term.name,
            "start_at": term.start_at,
            "end_at": term.end_at,
            "created_at": term.created_at,
            "workflow_state": term.workflow_state,
            "grading_period_group_id": None,
        }

    def role(self, role: Role) -> JsonDict:
        account = self.inst.accounts_by_id[role.account_id]
        granted = _ROLE_PERMISSIONS.get(role.base_role_type, ())
        return {
            "id": role.id,
            "role": role.name,
            "label": role.label,
            "base_role_type": role.base_role_type,
            "is_account_role": role.is_account_role,
            "workflow_state": role.workflow_state,
            "created_at": role.created_at,
            "last_updated_at": role.created_at,
            "account": {
                "id": account.id,
                "name": account.name,
                "parent_account_id": account.parent_account_id,
                "root_account_id": account.root_account_id,
                "sis_account_id": account.sis_account_id,
            },
            "permissions": {
                name: {
                    "enabled": name in granted,
                    "locked": False,
                    "readonly": False,
                    "explicit": False,
                    "applies_to_self": True,
                    "applies_to_descendants": True,
                }
                for name in _ALL_PERMISSIONS
            },
        }

    # ------------------------------------------------------------------ courses
    def course_concluded(self, course: Course) -> bool:
        if course.db_state == "completed":
            return True
        term = self.inst.terms_by_id[course.term_id]
        ends = [value for value in (course.end_at, term.end_at) if value]
        return any(parse_iso(value) < self.now for value in ends)

    def total_students(self, enrollments: Iterable[Enrollment]) -> int:
        return len(
            {
                e.user_id
                for e in enrollments
                if e.type == "StudentEnrollment" and self.enrollment_state(e) in COUNTED_STUDENT_STATES
            }
        )

    def course(self, course: Course, includes: Iterable[str] = ()) -> JsonDict:
        inc = set(includes)
        data: JsonDict = {
            "id": course.id,
            "name": course.nickname or course.name,
            "account_id": course.account_id,
            "uuid": course.uuid,
            "start_at": course.start_at,
            "grading_standard_id": None,
            "is_public": False,
            "created_at": course.created_at,
            "course_code": course.course_code,
            "default_view": course.default_view,
            "root_account_id": ROOT_ACCOUNT_ID,
            "enrollment_term_id": course.term_id,
            "license": "private",
            "grade_passback_setting": None,
            "end_at": course.end_at,
            "public_syllabus": False,
            "public_syllabus_to_auth": False,
            "storage_quota_mb": 500,
            "is_public_to_auth_users": False,
            "homeroom_course": False,
            "course_color": None,
            "friendly_name": None,
            "apply_assignment_group_weights": False,
            "calendar": {"ics": f"{self.base_url}/feeds/calendars/course_{course.uuid}.ics"},
            "time_zone": course.time_zone,
            "blueprint": False,
            "template": False,
            "sis_course_id": course.sis_course_id,
            "sis_import_id": course.sis_import_id,
            "integration_id": None,
            "hide_final_grades": False,
            "workflow_state": course.api_state,
            "restrict_enrollments_to_course_dates": False,
        }
        if course.nickname:
            data["original_name"] = course.name
        if "term" in inc:
            data["term"] = self.course_term(self.inst.terms_by_id[course.term_id])
        if "total_students" in inc:
            data["total_students"] = self.total_students(self.inst.enrollments_by_course.get(course.id, []))
        if "concluded" in inc:
            data["concluded"] = self.course_concluded(course)
        if "teachers" in inc:
            data["teachers"] = [
                self.user_display(self.inst.users_by_id[e.user_id], course.id)
                for e in self.inst.enrollments_by_course.get(course.id, [])
                if e.type == "TeacherEnrollment" and self.enrollment_state(e) not in {"deleted", "rejected"}
            ]
        if "account" in inc:
            data["account"] = self.account(self.inst.accounts_by_id[course.account_id])
        return data

    # ----------------------------------------------------------------- sections
    def section(self, section: Section, includes: Iterable[str] = ()) -> JsonDict:
        course = self.inst.courses_by_id[section.course_id]
        data: JsonDict = {
            "id": section.id,
            "course_id": section.course_id,
            "name": section.name,
            "start_at": None,
            "end_at": None,
            "created_at": section.created_at,
            "restrict_enrollments_to_section_dates": False,
            "nonxlist_course_id": section.nonxlist_course_id,
            "sis_section_id": section.sis_section_id,
            "sis_course_id": course.sis_course_id,
            "integration_id": None,
            "sis_import_id": section.sis_import_id,
        }
        inc = set(includes)
        enrollments = self.inst.enrollments_by_section.get(section.id, [])
        if "total_students" in inc:
            data["total_students"] = self.total_students(enrollments)
        if "students" in inc:
            students = [
                self.user(self.inst.users_by_id[e.user_id])
                for e in enrollments
                if e.type == "StudentEnrollment" and self.enrollment_state(e) in {"active", "invited"}
            ]
            data["students"] = students or None
        return data

    # -------------------------------------------------------------------- users
    def user(self, user: User, *, email: bool = True) -> JsonDict:
        data: JsonDict = {
            "id": user.id,
            "name": user.name,
            "created_at": user.created_at,
            "sortable_name": user.sortable_name,
            "short_name": user.short_name,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "sis_user_id": user.sis_user_id,
            "integration_id": None,
            "sis_import_id": user.sis_import_id,
            "login_id": user.login_id,
        }
        if email:
            data["email"] = user.email
        return data

    def user_display(self, user: User, course_id: int) -> JsonDict:
        return {
            "id": user.id,
            "anonymous_id": format(user.id, "x"),
            "display_name": user.short_name,
            "avatar_image_url": f"{self.base_url}/images/messages/avatar-50.png",
            "html_url": f"{self.base_url}/courses/{course_id}/users/{user.id}",
            "pronouns": None,
        }

    def embedded_user(self, user: User) -> JsonDict:
        return {
            "id": user.id,
            "name": user.name,
            "created_at": user.created_at,
            "sortable_name": user.sortable_name,
            "short_name": user.short_name,
            "sis_user_id": user.sis_user_id,
            "integration_id": None,
            "login_id": user.login_id,
        }

    # -------------------------------------------------------------- enrollments
    def enrollment_state(self, enrollment: Enrollment) -> str:
        course = self.inst.courses_by_id[enrollment.course_id]
        section = self.inst.sections_by_id[enrollment.section_id]
        if course.db_state == "deleted" or section.workflow_state == "deleted":
            return "deleted"
        return enrollment.state

    def enrollment(self, enrollment: Enrollment, *, with_user: bool = True) -> JsonDict:
        inst = self.inst
        course = inst.courses_by_id[enrollment.course_id]
        section = inst.sections_by_id[enrollment.section_id]
        user = inst.users_by_id[enrollment.user_id]
        role = inst.roles_by_id[enrollment.role_id]
        account = inst.accounts_by_id[course.account_id]
        data: JsonDict = {
            "id": enrollment.id,
            "user_id": enrollment.user_id,
            "course_id": enrollment.course_id,
            "type": enrollment.type,
            "created_at": enrollment.created_at,
            "updated_at": enrollment.updated_at,
            "associated_user_id": enrollment.associated_user_id,
            "start_at": None,
            "end_at": None,
            "course_section_id": enrollment.section_id,
            "root_account_id": ROOT_ACCOUNT_ID,
            "limit_privileges_to_course_section": False,
            "enrollment_state": self.enrollment_state(enrollment),
            "role": role.name,
            "role_id": role.id,
            "last_activity_at": enrollment.last_activity_at,
            "last_attended_at": None,
            "total_activity_time": enrollment.total_activity_time,
            "sis_import_id": enrollment.sis_import_id,
            "sis_account_id": account.sis_account_id,
            "sis_course_id": course.sis_course_id,
            "course_integration_id": None,
            "sis_section_id": section.sis_section_id,
            "section_integration_id": None,
            "sis_user_id": user.sis_user_id,
            "html_url": f"{self.base_url}/courses/{enrollment.course_id}/users/{enrollment.user_id}",
        }
        if enrollment.type in {"StudentEnrollment", "StudentViewEnrollment"}:
            data["grades"] = {
                "html_url": f"{self.base_url}/courses/{enrollment.course_id}/grades/{enrollment.user_id}",
                "current_grade": None,
                "current_score": None,
                "final_grade": None,
                "final_score": None,
                "unposted_current_score": None,
                "unposted_current_grade": None,
                "unposted_final_score": None,
                "unposted_final_grade": None,
            }
        if with_user:
            data["user"] = self.embedded_user(user)
        return data

    # ------------------------------------------------------------- ground truth
    def live_assessment_result(self, assessment: LiveAssessment, result: LiveAssessmentResult) -> JsonDict:
        """Canvas's Result: string ids, the related objects as ``links``."""
        return {
            "id": str(result.id),
            "passed": result.passed,
            "assessed_at": result.assessed_at,
            "links": {
                "user": str(result.user_id),
                "assessor": str(result.assessor_id),
                "assessment": str(assessment.id),
            },
        }

    def live_assessment(self, assessment: LiveAssessment) -> JsonDict:
        """An assessment with its results (ground truth only: the key's scopes read results, not these)."""
        return {
            "id": assessment.id,
            "course_id": assessment.course_id,
            "key": assessment.key,
            "title": assessment.title,
            "results": [self.live_assessment_result(assessment, r) for r in assessment.results],
        }

    def ground_truth(self) -> JsonDict:
        inst = self.inst
        root = inst.accounts_by_id[ROOT_ACCOUNT_ID]
        return {
            "root_account": self.account(root, ("lti_guid",)),
            "api_user": self.user(inst.api_user),
            "accounts": [self.account(a, ("lti_guid",)) for a in inst.accounts],
            "terms": [self.term(t) for t in inst.terms],
            "roles": [self.role(r) for r in inst.roles],
            "courses": [self.course(c) for c in inst.courses],
            "sections": [self.section(s) for s in inst.sections],
            "users": [self.user(u) for u in inst.users],
            "enrollments": [self.enrollment(e) for e in inst.enrollments],
            "crosslisted_section_id": inst.crosslisted_section_id,
            "nicknamed_course_id": inst.nicknamed_course_id,
            "live_assessments": [self.live_assessment(a) for a in inst.live_assessments],
            # updated_at of objects changed through /_sim/changes (the API shapes have no such field)
            "updated_at": {
                "courses": {str(c.id): c.updated_at for c in inst.courses if c.updated_at},
                "sections": {str(s.id): s.updated_at for s in inst.sections if s.updated_at},
                "users": {str(u.id): u.updated_at for u in inst.users if u.updated_at},
            },
        }
