"""Held mass drops: the pending ones, the decided ones, and the admin's decision."""

from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from rostersync import admin
from rostersync.models import parse_canvas_id
from rostersync.services import shared_services
from rostersync.web import signed_in_admin, signed_in_tenant

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
services = shared_services()


@router.get("/admin/holds")
def holds() -> list[dict[str, object]]:
    return admin.held_syncs(services, signed_in_tenant(router))


@router.get("/admin/holds/decided")
def decided_holds() -> list[dict[str, object]]:
    return admin.hold_decisions(services, signed_in_tenant(router))


@router.post("/admin/holds/<course_id>/<decision>")
def decide(course_id: str, decision: str) -> dict[str, object]:
    course = parse_canvas_id(course_id)
    if decision not in {"approve", "reject"} or course is None:
        raise NotFoundError()
    return admin.decide_hold(
        services,
        signed_in_tenant(router),
        course,
        approve=decision == "approve",
        decided_by=signed_in_admin(router),
    )
