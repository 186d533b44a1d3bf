"""Seeded, reproducible generation of the simulated institution.

Everything comes from one ``random.Random(seed)``: same seed, course count and reference year give the same
ids, names, uuids and timestamps.
"""

from __future__ import annotations

import random
import string
import unicodedata
from datetime import UTC, datetime, timedelta

from .model import (
    ACCOUNT_ADMIN_ROLE_ID,
    DESIGNER_ROLE_ID,
    LAB_STUDENT_ROLE_ID,
    OBSERVER_ROLE_ID,
    ROOT_ACCOUNT_ID,
    STUDENT_ROLE_ID,
    TA_ROLE_ID,
    TEACHER_ROLE_ID,
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

FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Beatriz", "Ben", "Carlos", "Chen", "Chloe", "Daniel", "Dmitri",
    "Elena", "Emma", "Fatima", "Felix", "Grace", "Hana", "Hiro", "Ines", "Isaac", "Jamal", "José", "Julia",
    "Kai", "Kenji", "Lara", "Leo", "Lucia", "Maya", "Mei", "Mohammed", "Nadia", "Noah", "Olga", "Omar",
    "Priya", "Quinn", "Rafael", "Rosa", "Sara", "Sean", "Sofia", "Tariq", "Theo", "Uma", "Victor", "Wei",
    "Xavier", "Yara", "Yusuf", "Zoë", "Liam", "Nora", "Ethan", "Ava", "Mateo", "Ivy", "Oscar", "Ruth",
)  # fmt: skip
LAST_NAMES = (
    "Abebe", "Adams", "Almeida", "Brown", "Castillo", "Chen", "Cohen", "Costa", "Davis", "Diaz", "Dubois",
    "Evans", "Fischer", "Garcia", "Gupta", "Hansen", "Hernández", "Ivanova", "Jackson", "Jensen", "Kim",
    "Kowalski", "Lee", "Lopez", "Martin", "Miller", "Moreau", "Müller", "Nakamura", "Nguyen", "Novak",
    "O'Brien", "Okafor", "Olsen", "Patel", "Petrov", "Quispe", "Rossi", "Santos", "Sato", "Schmidt", "Silva",
    "Singh", "Smith", "Sousa", "Tanaka", "Taylor", "Thompson", "Usman", "Van Dijk", "Wang", "Weber",
    "Williams", "Wilson", "Yamamoto", "Young", "Zhang", "Zimmerman", "Andersen", "Baker",
)  # fmt: skip

SUBJECTS: dict[int, tuple[str, tuple[str, ...]]] = {
    ROOT_ACCOUNT_ID: ("GEN", ("Academic Integrity", "Library Research", "Statistics", "Ethics", "Writing")),
    2: (
        "MED",
        ("Anatomy", "Physiology", "Biochemistry", "Pharmacology", "Pathology", "Microbiology", "Immunology",
         "Clinical Skills", "Neuroscience", "Genetics"),
    ),
    3: (
        "LAW",
        ("Contracts", "Torts", "Civil Procedure", "Constitutional Law", "Criminal Law", "Property",
         "Evidence", "Legal Writing", "Administrative Law", "Tax Law"),
    ),
    4: ("SURG", ("Surgical Principles", "Trauma Surgery", "Anesthesia", "Surgical Anatomy", "Orthopedics")),
}  # fmt: skip
ACCOUNT_WEIGHTS = ((2, 35), (3, 35), (4, 20), (ROOT_ACCOUNT_ID, 10))
LEVELS = (101, 102, 110, 201, 210, 220, 301, 310, 401, 450)
ALNUM = string.ascii_letters + string.digits


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


class _Generator:
    def __init__(self, seed: int, n_courses: int, reference_year: int) -> None:
        # Deliberately a seeded PRNG: the data must be reproducible, nothing here is a secret.
        self.rng = random.Random(seed)  # noqa: S311
        self.n_courses = n_courses
        self.year = reference_year
        self.base = datetime(reference_year - 3, 6, 1, 12, 0, 0, tzinfo=UTC)
        self.users: list[User] = []
        self.users_by_id: dict[int, User] = {}
        self.enrollments: list[Enrollment] = []
        self.logins: set[str] = set()
        self.sis_numbers = iter(self.rng.sample(range(10_000_000, 99_999_999), 12 * n_courses + 300))
        self.next_user_id = 5001
        self.next_enrollment_id = 50001

    # ------------------------------------------------------------------ helpers
    def uuid40(self) -> str:
        return "".join(self.rng.choice(ALNUM) for _ in range(40))

    def moment(self, start: datetime, max_days: int) -> datetime:
        return start + timedelta(seconds=self.rng.randint(0, max_days * 86400))

    def date(self, year: int, month: int, day: int) -> datetime:
        return datetime(year, month, day, 4, 0, 0, tzinfo=UTC)

    # ----------------------------------------------------------------- entities
    def accounts(self) -> list[Account]:
        tz = "America/New_York"
        return [
            Account(ROOT_ACCOUNT_ID, "Demo University", self.uuid40(), None, None, None, tz),
            Account(2, "School of Medicine", self.uuid40(), ROOT_ACCOUNT_ID, ROOT_ACCOUNT_ID, "MED", tz),
            Account(3, "School of Law", self.uuid40(), ROOT_ACCOUNT_ID, ROOT_ACCOUNT_ID, "LAW", tz),
            Account(4, "Department of Surgery", self.uuid40(), 2, ROOT_ACCOUNT_ID, "MED-SURG", tz),
        ]

    def terms(self) -> list[Term]:
        y = self.year
        created = _iso(self.base)
        return [
            Term(1, "Default Term", None, None, None, created),
            Term(
                2,
                f"Academic Year {y - 1}-{y + 1}",
                f"AY{y - 1}",
                _iso(self.date(y - 1, 8, 15)),
                _iso(self.date(y + 1, 6, 30)),
                created,
            ),
            Term(
                3,
                f"Academic Year {y - 2}-{y - 1}",
                f"AY{y - 2}",
                _iso(self.date(y - 2, 8, 15)),
                _iso(self.date(y - 1, 6, 30)),
                created,
            ),
        ]

    def roles(self) -> list[Role]:
        created = _iso(self.base)
        built_in = [
            (ACCOUNT_ADMIN_ROLE_ID, "AccountAdmin", "Account Admin", "AccountMembership", True),
            (STUDENT_ROLE_ID, "StudentEnrollment", "Student", "StudentEnrollment", False),
            (TEACHER_ROLE_ID, "TeacherEnrollment", "Teacher", "TeacherEnrollment", False),
            (TA_ROLE_ID, "TaEnrollment", "TA", "TaEnrollment", False),
            (DESIGNER_ROLE_ID, "DesignerEnrollment", "Designer", "DesignerEnrollment", False),
            (OBSERVER_ROLE_ID, "ObserverEnrollment", "Observer", "ObserverEnrollment", False),
        ]
        roles = [
            Role(rid, name, label, base, is_acct, "built_in", ROOT_ACCOUNT_ID, created)
            for rid, name, label, base, is_acct in built_in
        ]
        custom_created = _iso(self.moment(self.base, 30))
        roles.append(
            Role(
                LAB_STUDENT_ROLE_ID,
                "Lab Student",
                "Lab Student",
                "StudentEnrollment",
                False,
                "active",
                ROOT_ACCOUNT_ID,
                custom_created,
            )
        )
        return roles

    def courses(self, terms: list[Term]) -> list[Course]:
        n = self.n_courses
        ids = list(range(101, 101 + n))
        order = ids[:]
        self.rng.shuffle(order)
        n_completed = n_unpublished = max(1, round(n / 10)) if n >= 5 else 0
        completed = set(order[:n_completed])
        unpublished = set(order[n_completed : n_completed + n_unpublished])
        term_by_id = {t.id: t for t in terms}
        names_seen: set[str] = set()
        courses: list[Course] = []
        account_ids = [a for a, _ in ACCOUNT_WEIGHTS]
        weights = [w for _, w in ACCOUNT_WEIGHTS]
        for course_id in ids:
            account_id = self.rng.choices(account_ids, weights=weights)[0]
            prefix, subjects = SUBJECTS[account_id]
            level = self.rng.choice(LEVELS)
            name = f"{self.rng.choice(subjects)} {level}"
            cohort = 2
            while name in names_seen:
                name = f"{name.split(' - ', maxsplit=1)[0]} - Cohort {cohort}"
                cohort += 1
            names_seen.add(name)
            if course_id in completed:
                db_state, term_id = "completed", 3
            elif course_id in unpublished:
                db_state = self.rng.choice(("created", "claimed"))
                term_id = 2 if self.rng.random() < 0.8 else 1
            else:
                db_state = "available"
                term_id = 2 if self.rng.random() < 0.9 else 1
            term = term_by_id[term_id]
            term_code = term.sis_term_id or "DEFAULT"
            sis = None if self.rng.random() < 0.06 else f"{prefix}-{level}-{term_code}-{course_id}"
            if term.start_at is None:
                created = self.moment(self.base + timedelta(days=400), 200)
            else:
                created = datetime.fromisoformat(term.start_at) - timedelta(days=self.rng.randint(20, 80))
            courses.append(
                Course(
                    id=course_id,
                    name=name,
                    course_code=f"{prefix}{level}-{course_id}",
                    sis_course_id=sis,
                    uuid=self.uuid40(),
                    db_state=db_state,
                    account_id=account_id,
                    term_id=term_id,
                    created_at=_iso(created),
                    start_at=term.start_at,
                    end_at=term.end_at if self.rng.random() < 0.7 else None,
                    sis_import_id=self.rng.choice((3, 7, 12)) if sis else None,
                    time_zone="America/New_York",
                    default_view=self.rng.choice(("modules", "wiki", "feed", "syllabus", "assignments")),
                )
            )
        if n >= 3 and all(c.sis_course_id for c in courses):
            courses[-1].sis_course_id = None
            courses[-1].sis_import_id = None
        return courses

    def sections(self, courses: list[Course], min_two: int | None) -> list[Section]:
        sections: list[Section] = []
        next_id = 1001
        for course in courses:
            count = self.rng.choices((1, 2, 3), weights=(5, 3, 2))[0]
            if course.id == min_two:
                count = max(count, 2)
            for index in range(count):
                letter = string.ascii_uppercase[index]
                name = course.name if count == 1 else f"{course.name} ({letter})"
                sis = None
                if course.sis_course_id and self.rng.random() > 0.08:
                    sis = f"{course.sis_course_id}-{letter}"
                created = datetime.fromisoformat(course.created_at) + timedelta(minutes=index)
                sections.append(
                    Section(
                        id=next_id,
                        name=name,
                        course_id=course.id,
                        nonxlist_course_id=None,
                        sis_section_id=sis,
                        created_at=_iso(created),
                        sis_import_id=course.sis_import_id if sis else None,
                    )
                )
                next_id += 1
        return sections

    def user(self, first: str, last: str, *, with_sis: bool = True, test_student: bool = False) -> User:
        created = self.moment(self.base, 500)
        if test_student:
            login = "".join(self.rng.choice("0123456789abcdef") for _ in range(40))
            user = User(self.next_user_id, first, last, None, login, None, _iso(created), None, True)
        else:
            base_login = f"{_ascii(first)}.{_ascii(last)}"
            login, suffix = base_login, 2
            while login in self.logins:
                login = f"{base_login}{suffix}"
                suffix += 1
            self.logins.add(login)
            sis_number = next(self.sis_numbers)
            sis = None if (not with_sis or self.rng.random() < 0.04) else str(sis_number)
            email = None if self.rng.random() < 0.04 else f"{login}@demo-university.edu"
            user = User(self.next_user_id, first, last, sis, login, email, _iso(created), 5 if sis else None)
        self.next_user_id += 1
        self.users.append(user)
        self.users_by_id[user.id] = user
        return user

    def pool(self, size: int) -> list[User]:
        return [self.user(self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)) for _ in range(size)]

    def enroll(
        self,
        course: Course,
        user: User,
        section: Section,
        etype: str,
        *,
        role_id: int,
        associated_user_id: int | None = None,
    ) -> Enrollment:
        created = datetime.fromisoformat(course.created_at) + timedelta(
            seconds=self.rng.randint(3600, 40 * 86400)
        )
        updated = created + timedelta(seconds=self.rng.randint(0, 60 * 86400))
        active_student = etype in {"StudentEnrollment", "StudentViewEnrollment"}
        last_activity = None
        if active_student and self.rng.random() < 0.8:
            last_activity = _iso(updated + timedelta(seconds=self.rng.randint(0, 90 * 86400)))
        enrollment = Enrollment(
            id=self.next_enrollment_id,
            user_id=user.id,
            course_id=course.id,
            section_id=section.id,
            type=etype,
            role_id=role_id,
            state="active",
            created_at=_iso(created),
            updated_at=_iso(updated),
            associated_user_id=associated_user_id,
            last_activity_at=last_activity,
            total_activity_time=self.rng.randint(0, 200_000) if last_activity else 0,
            sis_import_id=course.sis_import_id if user.sis_user_id and course.sis_course_id else None,
        )
        self.next_enrollment_id += 1
        self.enrollments.append(enrollment)
        return enrollment

    def course_enrollments(
        self,
        course: Course,
        sections: list[Section],
        pools: tuple[list[User], list[User], list[User]],
        allow_dual: bool,
    ) -> None:
        students_pool, teachers_pool, observers_pool = pools
        rng = self.rng
        teachers = rng.sample(teachers_pool, rng.randint(1, 2))
        for teacher in teachers:
            self.enroll(course, teacher, sections[0], "TeacherEnrollment", role_id=TEACHER_ROLE_ID)
        ta_candidates = [u for u in teachers_pool if u not in teachers]
        for ta in rng.sample(ta_candidates, min(len(ta_candidates), rng.randint(0, 2))):
            self.enroll(course, ta, rng.choice(sections), "TaEnrollment", role_id=TA_ROLE_ID)
        student_enrollments: list[Enrollment] = []
        count = min(len(students_pool), rng.randint(25, 35))
        for student in rng.sample(students_pool, count):
            lab = rng.random() < 0.04
            enrollment = self.enroll(
                course,
                student,
                rng.choice(sections),
                "StudentEnrollment",
                role_id=LAB_STUDENT_ROLE_ID if lab else STUDENT_ROLE_ID,
            )
            roll = rng.random()
            if roll < 0.025:
                enrollment.state = "inactive"
            elif roll < 0.045:
                enrollment.state = "completed"
            elif roll < 0.07:
                enrollment.state = "invited"
            elif roll < 0.085:
                enrollment.state = "deleted"
            student_enrollments.append(enrollment)
        active = [e for e in student_enrollments if e.state == "active" and e.role_id == STUDENT_ROLE_ID]
        if allow_dual and len(sections) >= 2 and active and rng.random() < 0.35:
            first = rng.choice(active)
            other = rng.choice([s for s in sections if s.id != first.section_id])
            self.enroll(
                course, self._user(first.user_id), other, "StudentEnrollment", role_id=STUDENT_ROLE_ID
            )
        test_student = self.user("Test", "Student", test_student=True)
        self.enroll(course, test_student, sections[0], "StudentViewEnrollment", role_id=STUDENT_ROLE_ID)
        if active and rng.random() < 0.3:
            observed = rng.choice(active)
            section = next(s for s in sections if s.id == observed.section_id)
            observer = rng.choice(observers_pool)
            self.enroll(
                course,
                observer,
                section,
                "ObserverEnrollment",
                role_id=OBSERVER_ROLE_ID,
                associated_user_id=observed.user_id,
            )

    def _user(self, user_id: int) -> User:
        return self.users_by_id[user_id]

    def ensure_states(self) -> None:
        """Make sure every interesting enrollment state occurs at least once."""
        for state in ("inactive", "completed", "invited", "deleted"):
            if any(e.state == state for e in self.enrollments):
                continue
            candidates = [
                e
                for e in self.enrollments
                if e.state == "active" and e.type == "StudentEnrollment" and e.role_id == STUDENT_ROLE_ID
            ]
            if candidates:
                candidates[len(candidates) // 2].state = state

    def build(self) -> Institution:
        rng = self.rng
        accounts = self.accounts()
        terms = self.terms()
        roles = self.roles()
        courses = self.courses(terms)
        available = [c for c in courses if c.db_state == "available"]
        source = target = nick = None
        if len(available) >= 2:
            source, target = rng.sample(available, 2)
        rest = [c for c in available if c is not source and c is not target]
        if rest:
            nick = rng.choice(rest)
            nick.nickname = f"My {nick.name.split(' ')[0]}"
        sections = self.sections(courses, source.id if source else None)
        api_user = User(1, "Sam", "Admin", "admin-0001", "sam.admin", "sam.admin@demo-university.edu",
                        _iso(self.base), None)  # fmt: skip
        n = self.n_courses
        pools = (self.pool(max(40, n * 11)), self.pool(max(4, n // 2 + 3)), self.pool(max(2, n // 6)))
        by_course: dict[int, list[Section]] = {}
        for section in sections:
            by_course.setdefault(section.course_id, []).append(section)
        for course in courses:
            self.course_enrollments(course, by_course[course.id], pools, allow_dual=course is not source)
        self.ensure_states()
        crosslisted_id = None
        if source is not None and target is not None:
            moved = by_course[source.id][-1]
            moved.course_id = target.id
            moved.nonxlist_course_id = source.id
            crosslisted_id = moved.id
            in_moved = [e for e in self.enrollments if e.section_id == moved.id]
            if not any(e.type == "StudentEnrollment" for e in in_moved):
                donor = next(
                    e
                    for e in self.enrollments
                    if e.course_id == source.id
                    and e.type == "StudentEnrollment"
                    and e.associated_user_id is None
                )
                donor.section_id = moved.id
            for enrollment in self.enrollments:
                if enrollment.section_id == moved.id:
                    enrollment.course_id = target.id
        institution = Institution(
            api_user=api_user,
            accounts=accounts,
            terms=terms,
            roles=roles,
            courses=courses,
            sections=sections,
            users=self.users,
            enrollments=self.enrollments,
            crosslisted_section_id=crosslisted_id,
            nicknamed_course_id=nick.id if nick else None,
        )
        # Drawn last, so the rest of the institution is what it was before live assessments existed.
        institution.live_assessments = self.live_assessments(institution)
        institution.reindex()
        return institution

    def live_assessments(self, inst: Institution) -> list[LiveAssessment]:
        """A few pass/fail live assessments in published courses, with results for their active students
        (most assessed once, some not yet, a few failed first and passed when assessed again)."""
        rng = self.rng
        published = [c for c in inst.courses if c.db_state == "available"]
        chosen = sorted(rng.sample(published, min(3, len(published))), key=lambda c: c.id)
        assessments: list[LiveAssessment] = []
        next_result_id = 1
        for index, course in enumerate(chosen):
            enrollments = inst.enrollments_by_course.get(course.id, [])
            teachers = [e.user_id for e in enrollments if e.type == "TeacherEnrollment"]
            students = sorted(
                {e.user_id for e in enrollments if e.type == "StudentEnrollment" and e.state == "active"}
            )
            if not teachers or not students:
                continue
            for number in range(1, 3 if index == 0 else 2):
                assessment_id = 801 + len(assessments)
                assessment = LiveAssessment(
                    assessment_id, course.id, f"outcome-check-{assessment_id}", f"Skills check {number}"
                )
                start = datetime.fromisoformat(course.created_at) + timedelta(days=30 * number)
                for user_id in students:
                    if rng.random() < 0.1:
                        continue  # not assessed yet
                    passed = rng.random() < 0.7
                    attempts = [passed] if passed or rng.random() < 0.6 else [False, True]
                    at = self.moment(start, 20)
                    for outcome in attempts:
                        assessment.results.append(
                            LiveAssessmentResult(
                                next_result_id, user_id, rng.choice(teachers), outcome, _iso(at)
                            )
                        )
                        next_result_id += 1
                        at += timedelta(days=rng.randint(1, 7))
                assessments.append(assessment)
        return assessments


def build_institution(seed: int, courses: int, reference_year: int | None = None) -> Institution:
    """Generate the institution for ``seed`` (same arguments -> identical data)."""
    year = reference_year if reference_year is not None else datetime.now(UTC).year
    return _Generator(seed, courses, year).build()
