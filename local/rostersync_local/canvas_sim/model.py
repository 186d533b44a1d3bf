"""In-memory records of the simulated Canvas institution (the generated, read-mostly data)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

# Built-in role ids (Canvas's own numbering for a fresh install).
ACCOUNT_ADMIN_ROLE_ID = 1
STUDENT_ROLE_ID = 3
TEACHER_ROLE_ID = 4
TA_ROLE_ID = 5
DESIGNER_ROLE_ID = 6
OBSERVER_ROLE_ID = 7
LAB_STUDENT_ROLE_ID = 10

ROOT_ACCOUNT_ID = 1

# Course DB workflow states (what account course lists filter on) -> API workflow_state.
COURSE_API_STATE = {
    "created": "unpublished",
    "claimed": "unpublished",
    "available": "available",
    "completed": "completed",
    "deleted": "deleted",
}


@dataclass(slots=True)
class Account:
    id: int
    name: str
    uuid: str
    parent_account_id: int | None
    root_account_id: int | None
    sis_account_id: str | None
    default_time_zone: str
    workflow_state: str = "active"


@dataclass(slots=True)
class Term:
    id: int
    name: str
    sis_term_id: str | None
    start_at: str | None
    end_at: str | None
    created_at: str
    workflow_state: str = "active"


@dataclass(slots=True)
class Role:
    id: int
    name: str  # the `role` field: type name for built-ins, label for custom roles
    label: str
    base_role_type: str
    is_account_role: bool
    workflow_state: str  # built_in | active | inactive
    account_id: int
    created_at: str


@dataclass(slots=True)
class Course:
    id: int
    name: str
    course_code: str
    sis_course_id: str | None
    uuid: str
    db_state: str  # created | claimed | available | completed | deleted
    account_id: int
    term_id: int
    created_at: str
    start_at: str | None
    end_at: str | None
    sis_import_id: int | None
    time_zone: str
    default_view: str
    nickname: str | None = None  # the API user's nickname for this course
    updated_at: str | None = None  # set by /_sim/changes (ms precision); None = never changed

    @property
    def api_state(self) -> str:
        return COURSE_API_STATE[self.db_state]


@dataclass(slots=True)
class Section:
    id: int
    name: str
    course_id: int  # the course it belongs to now
    nonxlist_course_id: int | None  # the original course when cross-listed
    sis_section_id: str | None
    created_at: str
    sis_import_id: int | None
    workflow_state: str = "active"
    updated_at: str | None = None  # set by /_sim/changes (ms precision); None = never changed


@dataclass(slots=True)
class User:
    id: int
    first_name: str
    last_name: str
    sis_user_id: str | None
    login_id: str
    email: str | None
    created_at: str
    sis_import_id: int | None
    is_test_student: bool = False
    workflow_state: str = "registered"  # Canvas user states: pre_registered | registered | deleted
    updated_at: str | None = None  # set by /_sim/changes (ms precision); None = never changed

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def sortable_name(self) -> str:
        return f"{self.last_name}, {self.first_name}"

    @property
    def short_name(self) -> str:
        return self.name


@dataclass(slots=True)
class Enrollment:
    id: int
    user_id: int
    course_id: int
    section_id: int
    type: str
    role_id: int
    state: str  # active | invited | inactive | completed | deleted ...
    created_at: str
    updated_at: str
    associated_user_id: int | None = None
    last_activity_at: str | None = None
    total_activity_time: int = 0
    sis_import_id: int | None = None


@dataclass(slots=True)
class LiveAssessmentResult:
    id: int
    user_id: int
    assessor_id: int
    passed: bool
    assessed_at: str


@dataclass(slots=True)
class LiveAssessment:
    """An outcome-based pass/fail assessment (Canvas's beta live assessments) and its results, by id."""

    id: int
    course_id: int
    key: str
    title: str
    results: list[LiveAssessmentResult] = field(default_factory=list)


@dataclass
class Institution:
    """The generated Canvas data plus lookup indexes (call :meth:`reindex` after changes)."""

    api_user: User
    accounts: list[Account]
    terms: list[Term]
    roles: list[Role]
    courses: list[Course]
    sections: list[Section]
    users: list[User]
    enrollments: list[Enrollment]
    crosslisted_section_id: int | None = None
    nicknamed_course_id: int | None = None
    live_assessments: list[LiveAssessment] = field(default_factory=list)

    accounts_by_id: dict[int, Account] = field(default_factory=dict, repr=False)
    terms_by_id: dict[int, Term] = field(default_factory=dict, repr=False)
    roles_by_id: dict[int, Role] = field(default_factory=dict, repr=False)
    courses_by_id: dict[int, Course] = field(default_factory=dict, repr=False)
    sections_by_id: dict[int, Section] = field(default_factory=dict, repr=False)
    users_by_id: dict[int, User] = field(default_factory=dict, repr=False)
    sections_by_course: dict[int, list[Section]] = field(default_factory=dict, repr=False)
    enrollments_by_course: dict[int, list[Enrollment]] = field(default_factory=dict, repr=False)
    enrollments_by_section: dict[int, list[Enrollment]] = field(default_factory=dict, repr=False)
    live_assessments_by_id: dict[int, LiveAssessment] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        self.accounts_by_id = {a.id: a for a in self.accounts}
        self.terms_by_id = {t.id: t for t in self.terms}
        self.roles_by_id = {r.id: r for r in self.roles}
        self.courses_by_id = {c.id: c for c in self.courses}
        self.sections_by_id = {s.id: s for s in self.sections}
        self.users_by_id = {u.id: u for u in self.users}
        by_course: dict[int, list[Section]] = defaultdict(list)
        for section in self.sections:
            by_course[section.course_id].append(section)
        self.sections_by_course = dict(by_course)
        enr_course: dict[int, list[Enrollment]] = defaultdict(list)
        enr_section: dict[int, list[Enrollment]] = defaultdict(list)
        for enrollment in self.enrollments:
            enr_course[enrollment.course_id].append(enrollment)
            enr_section[enrollment.section_id].append(enrollment)
        self.enrollments_by_course = dict(enr_course)
        self.enrollments_by_section = dict(enr_section)
        self.live_assessments_by_id = {a.id: a for a in self.live_assessments}

    # ----------------------------------------------------------------- lookups
    def account_and_descendants(self, account_id: int) -> set[int]:
        result = {account_id}
        changed = True
        while changed:
            changed = False
            for account in self.accounts:
                if account.parent_account_id in result and account.id not in result:
                    result.add(account.id)
                    changed = True
        return result

    def find_account(self, ref: str) -> Account | None:
        if ref == "self":
            return self.accounts_by_id.get(ROOT_ACCOUNT_ID)
        if ref.startswith("sis_account_id:"):
            sis = ref.removeprefix("sis_account_id:")
            return next((a for a in self.accounts if a.sis_account_id == sis), None)
        return self.accounts_by_id.get(_int_or_none(ref) or -1)

    def find_course(self, ref: str) -> Course | None:
        if ref.startswith("sis_course_id:"):
            sis = ref.removeprefix("sis_course_id:")
            return next((c for c in self.courses if c.sis_course_id == sis), None)
        return self.courses_by_id.get(_int_or_none(ref) or -1)

    def find_section(self, ref: str) -> Section | None:
        if ref.startswith("sis_section_id:"):
            sis = ref.removeprefix("sis_section_id:")
            return next((s for s in self.sections if s.sis_section_id == sis), None)
        return self.sections_by_id.get(_int_or_none(ref) or -1)

    def find_user(self, ref: str) -> User | None:
        if ref.startswith("sis_user_id:"):
            sis = ref.removeprefix("sis_user_id:")
            return next((u for u in self.users if u.sis_user_id == sis), None)
        if ref.startswith("sis_login_id:"):
            login = ref.removeprefix("sis_login_id:")
            return next((u for u in self.users if u.login_id == login), None)
        if ref == "self":
            return self.api_user
        return self.users_by_id.get(_int_or_none(ref) or -1)


def _int_or_none(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None
