"""Applying a live event: which tenants it routes to, which courses it points at, what is recorded."""

from datetime import UTC, datetime

from rostersync.events.apply import EventOutcome, affected_courses, not_connected, route_to_tenants
from rostersync.events.models import NormalizedEvent, ObjectType
from rostersync.models import Tenant, TenantStatus

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def tenant(tenant_id: str, uuid: str | None, url: str | None) -> Tenant:
    return Tenant(tenant_id=tenant_id, name=tenant_id, root_account_uuid=uuid, canvas_url=url)


TENANTS = [
    tenant("prod", "uuid-a", "https://school.instructure.com"),
    tenant("staging", "uuid-a", "https://school.beta.instructure.com"),
    tenant("other", "uuid-b", "https://other.instructure.com"),
    tenant("new", None, None),  # created by an operator, not configured yet
]


def event(**fields: object) -> NormalizedEvent:
    values: dict[str, object] = {
        "format": "canvas",
        "event_name": "enrollment_created",
        "event_time": NOW,
    }
    return NormalizedEvent.model_validate(values | fields)


def test_an_event_routes_to_every_tenant_of_its_root_account() -> None:
    routed = route_to_tenants(TENANTS, event(root_account_uuid="uuid-a", hostname="other.instructure.com"))
    assert [t.tenant_id for t in routed] == ["prod", "staging"]  # the uuid wins over the host


def test_without_a_known_uuid_the_host_routes_it_and_unconfigured_tenants_never_match() -> None:
    by_host = route_to_tenants(
        TENANTS, event(root_account_uuid="uuid-unknown", hostname="Other.Instructure.com")
    )
    assert [t.tenant_id for t in by_host] == ["other"]
    assert route_to_tenants(TENANTS, event(hostname="")) == []
    assert route_to_tenants(TENANTS, event()) == []


def test_a_cross_listed_section_points_at_both_its_courses_once() -> None:
    moved = event(object_type=ObjectType.SECTION, course_id=102, nonxlist_course_id=101, section_id=9)
    assert affected_courses(moved) == [102, 101]
    same = event(object_type=ObjectType.SECTION, course_id=102, nonxlist_course_id=102)
    assert affected_courses(same) == [102]


def test_a_course_event_points_at_its_own_id_and_a_user_event_at_none_by_itself() -> None:
    assert affected_courses(event(object_type=ObjectType.COURSE, object_id=105)) == [105]
    assert affected_courses(event(object_type=ObjectType.ENROLLMENT, course_id=None)) == []
    assert affected_courses(event(object_type=ObjectType.USER, object_id=7)) == []


def test_an_event_for_a_tenant_awaiting_authorization_says_why() -> None:
    waiting = TENANTS[0].model_copy(update={"status": TenantStatus.NEEDS_REAUTHORIZATION})
    result = not_connected(waiting)
    assert result.outcome is EventOutcome.TENANT_NOT_CONNECTED
    assert "needs_reauthorization" in result.reason and result.course_ids == []
