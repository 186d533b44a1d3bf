"""The Caliper IMS 1.1 live-event format (an envelope whose data[0] is the event), normalised."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from rostersync.events.catalog import ROSTER_EVENTS, ignore_reason
from rostersync.events.fields import (
    InvalidEvent,
    Json,
    canvas_extension,
    hint_id,
    ignored_outcome,
    ok_outcome,
    optional_time,
    read_id,
    read_ref,
    read_text,
    required_time,
    sub_object,
)
from rostersync.events.models import ObjectType, ParsedEvent
from rostersync.events.normalize import caliper_urn_type

__all__ = ["caliper_event_name", "parse_caliper_event"]

_DEFAULT_EDAPP_HOST = "www.canvaslms.com"  # edApp/sensor of system-generated Caliper events
_CALIPER_VERBS = {"Created": "created", "Modified": "updated", "Deleted": "deleted"}
# Caliper object URN type -> Canvas event-name stem (documented Caliper examples).
_CALIPER_STEMS = {
    "assignment": "assignment",
    "assignment_override": "assignment_override",
    "attachment": "attachment",
    "discussion": "discussion_topic",
    "discussionEntry": "discussion_entry",
    "group": "group",
    "groupCategory": "group_category",
    "groupMembership": "group_membership",
    "quiz": "quiz",
    "submission": "submission",
    "wikiPage": "wiki_page",
}


def caliper_event_name(event: Mapping[str, Any]) -> str | None:
    """The Canvas event name of a Caliper event (data[0]), from its type, action and object; None when
    the combination is not one Canvas documents."""
    event_type = event.get("type")
    action = event.get("action")
    obj = sub_object(event, "object")
    object_type = obj.get("type")
    urn_type = caliper_urn_type(obj.get("id"))
    extension = canvas_extension(obj)

    if event_type == "SessionEvent":
        return {"LoggedIn": "logged_in", "LoggedOut": "logged_out"}.get(str(action))
    if event_type == "NavigationEvent" or action == "NavigatedTo":
        return "asset_accessed"
    if event_type == "GradeEvent" or action == "Graded":
        return "grade_change"
    if action == "Submitted":
        return "quiz_submitted" if event_type == "AssessmentEvent" else "submission_created"
    if action == "Posted" and urn_type == "discussionEntry":
        return "discussion_entry_created"
    verb = _CALIPER_VERBS.get(str(action))
    if verb is None or urn_type is None:
        return None
    if urn_type == "enrollment":
        if verb == "deleted":
            return None
        # enrollment_state events carry "state" (no workflow_state/type) on the same enrollment URN.
        is_state = "state" in extension and "workflow_state" not in extension
        return f"enrollment_state_{verb}" if is_state else f"enrollment_{verb}"
    if urn_type == "course":
        if object_type == "Document":  # syllabus_updated: a Document on the course URN
            return "syllabus_updated" if verb == "updated" else None
        if object_type in (None, "CourseOffering") and verb != "deleted":
            return f"course_{verb}"
        return None
    if urn_type == "account":
        if "user_id" in extension and verb == "created":
            return "user_account_association_created"
        return None
    stem = _CALIPER_STEMS.get(urn_type)
    return f"{stem}_{verb}" if stem else None


def parse_caliper_event(document: Json) -> ParsedEvent:
    """An "ok" or "ignored" outcome for a Caliper envelope (only data[0] is read); raises InvalidEvent
    when malformed."""
    data = document.get("data")
    if not isinstance(data, list) or not data:
        raise InvalidEvent("Caliper envelope without data[0]")
    event = data[0]
    if not isinstance(event, Mapping):
        raise InvalidEvent("Caliper data[0] is not an object")
    warnings: list[str] = []
    if len(data) > 1:
        warnings.append(f"Caliper envelope carries {len(data)} events; only data[0] was read")
    action = event.get("action")
    if not isinstance(action, str) or not action:
        raise InvalidEvent("Caliper data[0].action is missing")
    if not isinstance(event.get("object"), Mapping):
        raise InvalidEvent("Caliper data[0].object is missing")

    event_name = caliper_event_name(event)
    if event_name is None:
        obj = sub_object(event, "object")
        described = caliper_urn_type(obj.get("id")) or obj.get("type")
        return ignored_outcome(
            f"unrecognised Caliper event: type={event.get('type')!r} action={action!r} object={described!r}",
            lambda notes: _caliper_envelope(document, event, f"caliper:{event.get('type')}:{action}", notes),
            warnings,
        )
    object_type = ROSTER_EVENTS.get(event_name)
    if object_type is None:
        return ignored_outcome(
            ignore_reason(event_name),
            lambda notes: _caliper_envelope(document, event, event_name, notes),
            warnings,
        )
    common = _caliper_envelope(document, event, event_name, warnings)
    fields = _caliper_object(object_type, sub_object(event, "object"), warnings)
    return ok_outcome(common, object_type, fields, warnings)


def _caliper_envelope(
    document: Mapping[str, Any], event: Mapping[str, Any], event_name: str, warnings: list[str]
) -> Json:
    actor = sub_object(event, "actor")
    actor_extension = canvas_extension(actor)
    request = canvas_extension(event)
    group = sub_object(event, "group")
    group_extension = canvas_extension(group)
    actor_user_id = None
    if caliper_urn_type(actor.get("id")) == "user":
        actor_user_id = hint_id(actor, "id", "data[0].actor", warnings, "user")
    context_type = read_text(group_extension, "context_type")
    context_id = None
    if context_type:
        context_id = hint_id(group_extension, "entity_id", "data[0].group.extensions", warnings)
    elif caliper_urn_type(group.get("id")) == "course":
        context_type = "Course"
        context_id = hint_id(group, "id", "data[0].group", warnings, "course")
    return {
        "format": "caliper",
        "event_name": event_name,
        "event_time": required_time(event, "eventTime", "data[0]"),
        "raw_event_id": read_text(event, "id"),
        "root_account_uuid": read_text(actor_extension, "root_account_uuid"),
        "root_account_id": read_id(actor_extension, "root_account_id", "data[0].actor.extensions"),
        "root_account_lti_guid": read_text(actor_extension, "root_account_lti_guid"),
        "hostname": read_text(request, "hostname") or _host(document.get("sensor")),
        "actor_user_id": actor_user_id,
        "context_type": context_type,
        "context_id": context_id,
        "job_tag": read_text(request, "job_tag"),
    }


def _host(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    host = urlsplit(url if "//" in url else f"//{url}").hostname
    return host if host and host != _DEFAULT_EDAPP_HOST else None


def _caliper_object(object_type: ObjectType, obj: Json, warnings: list[str]) -> Json:
    extension = canvas_extension(obj)
    label = "data[0].object.extensions"
    match object_type:
        case ObjectType.ENROLLMENT:
            enrollment_id = read_ref(obj, "id", "enrollment", "data[0].object", required=True)
            return {
                "object_id": enrollment_id,
                "enrollment_id": enrollment_id,
                "course_id": read_ref(extension, "course_id", "course", label),
                "section_id": read_ref(extension, "course_section_id", "section", label),
                "user_id": read_ref(extension, "user_id", "user", label),
                "associated_user_id": read_ref(extension, "associated_user_id", "user", label),
                "enrollment_type": read_text(extension, "type"),
                "workflow_state": read_text(extension, "workflow_state"),
                "created_at": optional_time(obj, "dateCreated", "data[0].object", warnings),
                "updated_at": optional_time(obj, "dateModified", "data[0].object", warnings),
            }
        case ObjectType.ENROLLMENT_STATE:
            enrollment_id = read_ref(obj, "id", "enrollment", "data[0].object", required=True)
            return {
                "object_id": enrollment_id,
                "enrollment_id": enrollment_id,
                "state": read_text(extension, "state"),
            }
        case ObjectType.COURSE:
            course_id = read_ref(obj, "id", "course", "data[0].object", required=True)
            return {
                "object_id": course_id,
                "course_id": course_id,
                "name": read_text(obj, "name"),
                "workflow_state": read_text(extension, "workflow_state"),
                "created_at": optional_time(obj, "dateCreated", "data[0].object", warnings),
                "updated_at": optional_time(obj, "dateModified", "data[0].object", warnings),
            }
        case ObjectType.USER_ACCOUNT_ASSOCIATION:
            user_id = read_ref(extension, "user_id", "user", label, required=True)
            return {
                "object_id": user_id,
                "user_id": user_id,
                "account_id": read_ref(obj, "id", "account", "data[0].object", required=True),
                "created_at": optional_time(obj, "dateCreated", "data[0].object", warnings),
                "updated_at": optional_time(obj, "dateModified", "data[0].object", warnings),
            }
        case _:  # caliper_event_name only yields the roster events above
            raise InvalidEvent(f"no Caliper form known for {object_type.value} events")
