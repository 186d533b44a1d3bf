"""Pydantic models of the Canvas objects rostersync reads (fields as Canvas's REST API documents them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, SecretStr


class CanvasObject(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CanvasAccount(CanvasObject):
    id: int
    name: str
    uuid: str | None = None
    parent_account_id: int | None = None
    root_account_id: int | None = None


class CanvasRole(CanvasObject):
    """A role as Canvas lists an account's roles: `role` is its name, `label` what people see."""

    id: int | None = None
    role: str
    label: str | None = None
    base_role_type: str | None = None
    workflow_state: str | None = None
    is_account_role: bool = False


class CanvasTerm(CanvasObject):
    id: int
    name: str | None = None
    end_at: datetime | None = None


class CanvasCourse(CanvasObject):
    id: int
    name: str
    original_name: str | None = None
    course_code: str | None = None
    sis_course_id: str | None = None
    workflow_state: str
    account_id: int | None = None
    enrollment_term_id: int | None = None
    end_at: datetime | None = None
    restrict_enrollments_to_course_dates: bool = False
    term: CanvasTerm | None = None

    @property
    def real_name(self) -> str:
        # `name` is the authorizing user's nickname when they set one; `original_name` is the course's.
        return self.original_name or self.name

    def concluded(self, now: datetime) -> bool:
        """Concluded by state, or by date while Canvas still says "available"."""
        if self.workflow_state == "completed":
            return True
        if self.restrict_enrollments_to_course_dates and self.end_at is not None:
            return self.end_at < now
        return self.term is not None and self.term.end_at is not None and self.term.end_at < now


class CanvasSection(CanvasObject):
    id: int
    name: str
    sis_section_id: str | None = None
    course_id: int
    nonxlist_course_id: int | None = None


class CanvasUser(CanvasObject):
    id: int
    name: str
    sortable_name: str | None = None
    short_name: str | None = None
    sis_user_id: str | None = None
    login_id: str | None = None
    email: str | None = None


class CanvasEnrollment(CanvasObject):
    id: int
    user_id: int
    course_id: int
    course_section_id: int | None = None
    type: str
    role: str
    role_id: int | None = None
    enrollment_state: str
    updated_at: str | None = None
    user: CanvasUser | None = None


class CanvasUserRef(CanvasObject):
    id: int
    name: str | None = None


class LiveAssessmentResultLinks(CanvasObject):
    """Canvas sends these ids as strings; they are local REST ids, kept as ints like every other id here."""

    user: int
    assessor: int | None = None
    assessment: int


class LiveAssessmentResult(CanvasObject):
    """One pass/fail result of an outcome-based live assessment (`{"results": [...]}`)."""

    id: str
    passed: bool
    assessed_at: datetime | None = None
    links: LiveAssessmentResultLinks


class TokenGrant(CanvasObject):
    """The token endpoint's answer. A refresh answer carries no refresh_token."""

    access_token: SecretStr
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int | None = None
    refresh_token: SecretStr | None = None
    user: CanvasUserRef | None = None
