"""The tenant and its Canvas connection: overview, Canvas settings, Generate Key, self-test, new tenants."""

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ForbiddenError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from rostersync import admin
from rostersync.services import shared_services
from rostersync.web import is_operator, parsed_body, public_base_url, signed_in_admin, signed_in_tenant

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
services = shared_services()


@router.get("/admin/tenant")
def tenant() -> dict[str, object]:
    event = router.current_event
    return admin.tenant_overview(
        services, signed_in_tenant(router), f"{public_base_url(event)}/oauth/callback"
    )


@router.post("/admin/settings/canvas")
def save_canvas_settings() -> dict[str, object]:
    event = router.current_event
    return admin.save_settings(
        services, signed_in_tenant(router), parsed_body(event, admin.CanvasSettingsForm)
    )


@router.post("/admin/authorization")
def generate_key() -> dict[str, str]:
    """The Generate Key button: a start link bound to this admin and tenant, single use, 10 minutes."""
    event = router.current_event
    start_url = admin.start_authorization(
        services, signed_in_tenant(router), signed_in_admin(router), public_base_url(event)
    )
    return {"start_url": start_url}


@router.post("/admin/self-test")
def connection_self_test() -> dict[str, object]:
    report = admin.self_test(services, signed_in_tenant(router))
    return {**report.model_dump(mode="json"), "passed": report.passed}


@router.post("/admin/tenants")
def add_tenant() -> Response[dict[str, object]]:
    event = router.current_event
    if not is_operator(router):
        raise ForbiddenError("only an operator creates tenants")
    created = admin.add_tenant(services, parsed_body(event, admin.NewTenantForm))
    return Response(201, content_types.APPLICATION_JSON, created)


@router.post("/admin/disconnect")
def disconnect() -> dict[str, object]:
    """End the Canvas grant and forget the tokens (the settings stay; Generate Key connects again)."""
    return admin.disconnect(services, signed_in_tenant(router), signed_in_admin(router))
