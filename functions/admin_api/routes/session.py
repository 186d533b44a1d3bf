"""The signed-in admin: who they are to rostersync (the page's tenant picker), and signing out."""

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from rostersync.services import shared_services
from rostersync.sign_in import sign_out
from rostersync.web import signed_in

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
services = shared_services()


@router.get("/admin/me")
def me() -> dict[str, object]:
    session = signed_in(router)
    return session.model_dump(mode="json", exclude={"subject"})


@router.post("/admin/sign-out")
def signing_out() -> dict[str, str]:
    """The page's Sign out: the admin's tokens stop working here at once (the IdP ends its own session)."""
    sign_out(services, signed_in(router).subject)
    return {"status": "signed out"}
