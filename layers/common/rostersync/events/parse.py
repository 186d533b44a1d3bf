"""Parse one raw Canvas Live Event (Canvas or Caliper IMS 1.1 format) into a `ParsedEvent`. Pure: no I/O.

Events are hints (docs/architecture.md, "Events are hints"): this module only normalises them;
routing and re-reading the affected objects happen elsewhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from rostersync.events.catalog import ROSTER_EVENTS, ignore_reason
from rostersync.events.models import NormalizedEvent, ObjectType, ParsedEvent
from rostersync.events.normalize import (
    IdError,
    caliper_urn_type,
    id_from_reference,
    parse_timestamp,
    to_local_id,
)

__all__ = ["caliper_event_name", "parse_event"]

CANVAS_EXTENSION = "com.instructure.canvas"
_DEFAULT_EDAPP_HOST = "www.canvaslms.com"  # edApp/sensor of system-generated Caliper events
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
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

Json = dict[str, Any]


class _Invalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_event(raw: Mapping[str, Any] | str | bytes) -> ParsedEvent:
    """Classify and normalise one live event: "ok" (roster-relevant), "ignored" (with the reason) or
    "invalid" (malformed, with the reason). Never raises."""
    try:
        return _parse(raw)
    except _Invalid as invalid:
        return ParsedEvent(status="invalid", reason=invalid.reason)
    except Exception as error:  # a last guard: one odd event must not stop a batch
        return ParsedEvent(status="invalid", reason=f"internal error: {type(error).__name__}: {error}")


def _parse(raw: Mapping[str, Any] | str | bytes) -> ParsedEvent:
    document = _load(raw)
    if "metadata" in document or "body" in document:
        return _parse_canvas(document)
    if "data" in document or "sensor" in document:
        return _parse_caliper(document)
    raise _Invalid("neither a Canvas event (metadata/body) nor a Caliper envelope (data[])")


def _load(raw: Mapping[str, Any] | str | bytes) -> Json:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _Invalid(f"not UTF-8 text: {error}") from error
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            raise _Invalid("empty input")
        try:
            document: Any = json.loads(text)
        except ValueError as error:
            if _JWT_SHAPE.fullmatch(text):
                raise _Invalid("a signed JWT, not JSON: decode it with decode_signed_event first") from error
            raise _Invalid(f"not JSON: {error}") from error
    else:
        document = raw
    if not isinstance(document, Mapping):
        raise _Invalid(f"not a JSON object (got {type(document).__name__})")
    return dict(document)


def _ok(common: Json, object_type: ObjectType, fields: Json, warnings: list[str]) -> ParsedEvent:
    event = NormalizedEvent(**common, object_type=object_type, **fields)
    return ParsedEvent(status="ok", event=event, warnings=tuple(warnings))


def _ignored(reason: str, envelope: Callable[[list[str]], Json], warnings: list[str]) -> ParsedEvent:
    """An ignored event keeps its envelope (name, time, tenant) when that part is readable."""
    try:
        event: NormalizedEvent | None = NormalizedEvent(**envelope(warnings))
    except _Invalid as invalid:
        event = None
        warnings.append(f"envelope unusable: {invalid.reason}")
    return ParsedEvent(status="ignored", reason=reason, event=event, warnings=tuple(warnings))


# -- field readers -------------------------------------------------------------------------------------
def _id(source: Mapping[str, Any], key: str, label: str, *, required: bool = False) -> int | None:
    try:
        value = to_local_id(source.get(key))
    except IdError as error:
        raise _Invalid(f"{label}.{key} is not a Canvas id: {source.get(key)!r}") from error
    if value is None and required:
        raise _Invalid(f"{label}.{key} is missing")
    return value


def _ref(
    source: Mapping[str, Any], key: str, entity: str, label: str, *, required: bool = False
) -> int | None:
    try:
        value = id_from_reference(source.get(key), entity)
    except IdError as error:
        raise _Invalid(f"{label}.{key} is not a Canvas {entity} id: {source.get(key)!r}") from error
    if value is None and required:
        raise _Invalid(f"{label}.{key} is missing")
    return value


def _hint_id(
    source: Mapping[str, Any], key: str, label: str, warnings: list[str], entity: str = ""
) -> int | None:
    """A context id (who acted, where): an unparseable one is dropped with a warning, not fatal."""
    try:
        return id_from_reference(source.get(key), entity) if entity else to_local_id(source.get(key))
    except IdError:
        warnings.append(f"{label}.{key} is not a Canvas id, ignored: {source.get(key)!r}")
        return None


def _text(source: Mapping[str, Any], key: str) -> str | None:
    value = source.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _time(source: Mapping[str, Any], key: str, label: str, warnings: list[str]) -> datetime | None:
    """An optional timestamp: an unparseable one is dropped with a warning (documented typos exist)."""
    try:
        return parse_timestamp(source.get(key))
    except ValueError:
        warnings.append(f"{label}.{key} unparseable, ignored: {source.get(key)!r}")
        return None


def _required_time(source: Mapping[str, Any], key: str, label: str) -> datetime:
    try:
        moment = parse_timestamp(source.get(key))
    except ValueError as error:
        raise _Invalid(f"{label}.{key} is not a timestamp: {source.get(key)!r}") from error
    if moment is None:
        raise _Invalid(f"{label}.{key} is missing")
    return moment


def _object(source: Mapping[str, Any], key: str) -> Json:
    value = source.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def _extension(source: Mapping[str, Any]) -> Json:
    return _object(_object(source, "extensions"), CANVAS_EXTENSION)


# -- Canvas format -------------------------------------------------------------------------------------
def _parse_canvas(document: Json) -> ParsedEvent:
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        raise _Invalid("Canvas event without a metadata object")
    event_name = metadata.get("event_name")
    if not isinstance(event_name, str) or not event_name.strip():
        raise _Invalid("metadata.event_name is missing")
    event_name = event_name.strip()
    body = document.get("body")
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise _Invalid(f"body is not an object (got {type(body).__name__})")

    warnings: list[str] = []
    object_type = ROSTER_EVENTS.get(event_name)
    if object_type is None:
        return _ignored(
            ignore_reason(event_name), lambda notes: _canvas_envelope(metadata, event_name, notes), warnings
        )
    common = _canvas_envelope(metadata, event_name, warnings)
    fields = _canvas_object(object_type, body, warnings)
    return _ok(common, object_type, fields, warnings)


def _canvas_envelope(metadata: Mapping[str, Any], event_name: str, warnings: list[str]) -> Json:
    context_type = _text(metadata, "context_type")
    return {
        "format": "canvas",
        "event_name": event_name,
        "event_time": _required_time(metadata, "event_time", "metadata"),
        "raw_event_id": _text(metadata, "event_id"),
        "root_account_uuid": _text(metadata, "root_account_uuid"),
        "root_account_id": _id(metadata, "root_account_id", "metadata"),
        "root_account_lti_guid": _text(metadata, "root_account_lti_guid"),
        "hostname": _text(metadata, "hostname"),
        "actor_user_id": _hint_id(metadata, "user_id", "metadata", warnings),
        "context_type": context_type,
        "context_id": _hint_id(metadata, "context_id", "metadata", warnings) if context_type else None,
        "job_tag": _text(metadata, "job_tag"),
    }


def _canvas_object(object_type: ObjectType, body: Mapping[str, Any], warnings: list[str]) -> Json:
    match object_type:
        case ObjectType.COURSE:
            course_id = _id(body, "course_id", "body", required=True)
            return {
                "object_id": course_id,
                "course_id": course_id,
                "account_id": _id(body, "account_id", "body"),
                "name": _text(body, "name"),
                "workflow_state": _text(body, "workflow_state"),
                "created_at": _time(body, "created_at", "body", warnings),
                "updated_at": _time(body, "updated_at", "body", warnings),
            }
        case ObjectType.SECTION:
            section_id = _id(body, "course_section_id", "body", required=True)
            course_id = _id(body, "course_id", "body")
            nonxlist_course_id = _id(body, "nonxlist_course_id", "body")
            return {
                "object_id": section_id,
                "section_id": section_id,
                "course_id": course_id,
                "nonxlist_course_id": nonxlist_course_id,
                "cross_listed": nonxlist_course_id is not None and nonxlist_course_id != course_id,
                "name": _text(body, "name"),
                "sis_id": _text(body, "sis_source_id"),
                "workflow_state": _text(body, "workflow_state"),
            }
        case ObjectType.ENROLLMENT:
            enrollment_id = _id(body, "enrollment_id", "body", required=True)
            return {
                "object_id": enrollment_id,
                "enrollment_id": enrollment_id,
                "course_id": _id(body, "course_id", "body"),
                "section_id": _id(body, "course_section_id", "body"),
                "user_id": _id(body, "user_id", "body"),
                "associated_user_id": _id(body, "associated_user_id", "body"),
                "enrollment_type": _text(body, "type"),
                "workflow_state": _text(body, "workflow_state"),
                "created_at": _time(body, "created_at", "body", warnings),
                "updated_at": _time(body, "updated_at", "body", warnings),
            }
        case ObjectType.ENROLLMENT_STATE:
            enrollment_id = _id(body, "enrollment_id", "body", required=True)
            return {"object_id": enrollment_id, "enrollment_id": enrollment_id, "state": _text(body, "state")}
        case ObjectType.USER:
            user_id = _id(body, "user_id", "body", required=True)
            return {
                "object_id": user_id,
                "user_id": user_id,
                "name": _text(body, "name"),
                "sis_id": _text(body, "user_sis_id"),
                "login_id": _text(body, "user_login"),
                "workflow_state": _text(body, "workflow_state"),
                "created_at": _time(body, "created_at", "body", warnings),
                "updated_at": _time(body, "updated_at", "body", warnings),
            }
        case ObjectType.SIS_BATCH:
            sis_batch_id = _id(body, "sis_batch_id", "body", required=True)
            return {
                "object_id": sis_batch_id,
                "sis_batch_id": sis_batch_id,
                "account_id": _id(body, "account_id", "body"),
                "workflow_state": _text(body, "workflow_state"),
            }
        case ObjectType.ACCOUNT:
            account_id = _id(body, "account_id", "body", required=True)
            return {
                "object_id": account_id,
                "account_id": account_id,
                "parent_account_id": _id(body, "parent_account_id", "body"),
                "name": _text(body, "name"),
                "workflow_state": _text(body, "workflow_state"),
            }
        case ObjectType.USER_ACCOUNT_ASSOCIATION:
            user_id = _id(body, "user_id", "body", required=True)
            return {
                "object_id": user_id,
                "user_id": user_id,
                "account_id": _id(body, "account_id", "body", required=True),
                "created_at": _time(body, "created_at", "body", warnings),
                "updated_at": _time(body, "updated_at", "body", warnings),
            }


# -- Caliper format ------------------------------------------------------------------------------------
def caliper_event_name(event: Mapping[str, Any]) -> str | None:
    """The Canvas event name of a Caliper event (data[0]), from its type, action and object; None when
    the combination is not one Canvas documents."""
    event_type = event.get("type")
    action = event.get("action")
    obj = _object(event, "object")
    object_type = obj.get("type")
    urn_type = caliper_urn_type(obj.get("id"))
    extension = _extension(obj)

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


def _parse_caliper(document: Json) -> ParsedEvent:
    data = document.get("data")
    if not isinstance(data, list) or not data:
        raise _Invalid("Caliper envelope without data[0]")
    event = data[0]
    if not isinstance(event, Mapping):
        raise _Invalid("Caliper data[0] is not an object")
    warnings: list[str] = []
    if len(data) > 1:
        warnings.append(f"Caliper envelope carries {len(data)} events; only data[0] was read")
    action = event.get("action")
    if not isinstance(action, str) or not action:
        raise _Invalid("Caliper data[0].action is missing")
    if not isinstance(event.get("object"), Mapping):
        raise _Invalid("Caliper data[0].object is missing")

    event_name = caliper_event_name(event)
    if event_name is None:
        obj = _object(event, "object")
        described = caliper_urn_type(obj.get("id")) or obj.get("type")
        return _ignored(
            f"unrecognised Caliper event: type={event.get('type')!r} action={action!r} object={described!r}",
            lambda notes: _caliper_envelope(document, event, f"caliper:{event.get('type')}:{action}", notes),
            warnings,
        )
    object_type = ROSTER_EVENTS.get(event_name)
    if object_type is None:
        return _ignored(
            ignore_reason(event_name),
            lambda notes: _caliper_envelope(document, event, event_name, notes),
            warnings,
        )
    common = _caliper_envelope(document, event, event_name, warnings)
    fields = _caliper_object(object_type, _object(event, "object"), warnings)
    return _ok(common, object_type, fields, warnings)


def _caliper_envelope(
    document: Mapping[str, Any], event: Mapping[str, Any], event_name: str, warnings: list[str]
) -> Json:
    actor = _object(event, "actor")
    actor_extension = _extension(actor)
    request = _extension(event)
    group = _object(event, "group")
    group_extension = _extension(group)
    actor_user_id = None
    if caliper_urn_type(actor.get("id")) == "user":
        actor_user_id = _hint_id(actor, "id", "data[0].actor", warnings, "user")
    context_type = _text(group_extension, "context_type")
    context_id = None
    if context_type:
        context_id = _hint_id(group_extension, "entity_id", "data[0].group.extensions", warnings)
    elif caliper_urn_type(group.get("id")) == "course":
        context_type = "Course"
        context_id = _hint_id(group, "id", "data[0].group", warnings, "course")
    return {
        "format": "caliper",
        "event_name": event_name,
        "event_time": _required_time(event, "eventTime", "data[0]"),
        "raw_event_id": _text(event, "id"),
        "root_account_uuid": _text(actor_extension, "root_account_uuid"),
        "root_account_id": _id(actor_extension, "root_account_id", "data[0].actor.extensions"),
        "root_account_lti_guid": _text(actor_extension, "root_account_lti_guid"),
        "hostname": _text(request, "hostname") or _host(document.get("sensor")),
        "actor_user_id": actor_user_id,
        "context_type": context_type,
        "context_id": context_id,
        "job_tag": _text(request, "job_tag"),
    }


def _host(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    host = urlsplit(url if "//" in url else f"//{url}").hostname
    return host if host and host != _DEFAULT_EDAPP_HOST else None


def _caliper_object(object_type: ObjectType, obj: Json, warnings: list[str]) -> Json:
    extension = _extension(obj)
    label = "data[0].object.extensions"
    match object_type:
        case ObjectType.ENROLLMENT:
            enrollment_id = _ref(obj, "id", "enrollment", "data[0].object", required=True)
            return {
                "object_id": enrollment_id,
                "enrollment_id": enrollment_id,
                "course_id": _ref(extension, "course_id", "course", label),
                "section_id": _ref(extension, "course_section_id", "section", label),
                "user_id": _ref(extension, "user_id", "user", label),
                "associated_user_id": _ref(extension, "associated_user_id", "user", label),
                "enrollment_type": _text(extension, "type"),
                "workflow_state": _text(extension, "workflow_state"),
                "created_at": _time(obj, "dateCreated", "data[0].object", warnings),
                "updated_at": _time(obj, "dateModified", "data[0].object", warnings),
            }
        case ObjectType.ENROLLMENT_STATE:
            enrollment_id = _ref(obj, "id", "enrollment", "data[0].object", required=True)
            return {
                "object_id": enrollment_id,
                "enrollment_id": enrollment_id,
                "state": _text(extension, "state"),
            }
        case ObjectType.COURSE:
            course_id = _ref(obj, "id", "course", "data[0].object", required=True)
            return {
                "object_id": course_id,
                "course_id": course_id,
                "name": _text(obj, "name"),
                "workflow_state": _text(extension, "workflow_state"),
                "created_at": _time(obj, "dateCreated", "data[0].object", warnings),
                "updated_at": _time(obj, "dateModified", "data[0].object", warnings),
            }
        case ObjectType.USER_ACCOUNT_ASSOCIATION:
            user_id = _ref(extension, "user_id", "user", label, required=True)
            return {
                "object_id": user_id,
                "user_id": user_id,
                "account_id": _ref(obj, "id", "account", "data[0].object", required=True),
                "created_at": _time(obj, "dateCreated", "data[0].object", warnings),
                "updated_at": _time(obj, "dateModified", "data[0].object", warnings),
            }
        case _:  # caliper_event_name only yields the roster events above
            raise _Invalid(f"no Caliper form known for {object_type.value} events")
