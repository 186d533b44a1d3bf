"""What syncs and how it went: the course selection, Sync now, history, errors and roster totals."""

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from rostersync import admin
from rostersync.services import shared_services
from rostersync.sync.reports import export_roster, roster_totals, sync_errors, sync_errors_csv
from rostersync.web import parsed_body, signed_in_tenant

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
services = shared_services()


@router.post("/admin/courses/sync-list")
def course_sync_list() -> dict[str, object]:
    event = router.current_event
    return admin.update_course_list(
        services, signed_in_tenant(router), parsed_body(event, admin.CourseListForm)
    )


@router.post("/admin/courses/all")
def sync_all_courses() -> dict[str, object]:
    event = router.current_event
    return admin.use_all_courses_of(
        services, signed_in_tenant(router), parsed_body(event, admin.AllCoursesForm)
    )


@router.post("/admin/sync")
def sync_now() -> Response[dict[str, str]]:
    event = router.current_event
    run_id = admin.sync_now(
        services, signed_in_tenant(router), parsed_body(event, admin.SyncNowForm).course_ids
    )
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body={"run_id": run_id})


@router.get("/admin/runs")
def runs() -> list[dict[str, object]]:
    return admin.recent_runs(services, signed_in_tenant(router))


@router.get("/admin/errors")
def errors() -> Response[str] | list[dict[str, object]]:
    event = router.current_event
    found = sync_errors(services, signed_in_tenant(router), event.get_query_string_value("run"))
    if event.get_query_string_value("format") == "csv":
        return Response(status_code=200, content_type="text/csv", body=sync_errors_csv(found))
    return [error.model_dump(mode="json") for error in found]


@router.get("/admin/roster/totals")
def roster_counts() -> dict[str, int]:
    return roster_totals(export_roster(services, signed_in_tenant(router)))


@router.post("/admin/settings/sync")
def save_sync_settings() -> dict[str, object]:
    event = router.current_event
    return admin.save_sync_settings(
        services, signed_in_tenant(router), parsed_body(event, admin.SyncSettingsForm)
    )


@router.get("/admin/canvas/roles")
def canvas_roles() -> list[dict[str, str]]:
    """The course roles a role mapping may name (read from the tenant's Canvas)."""
    return admin.canvas_roles(services, signed_in_tenant(router))
