"""The Canvas live-event format (`{metadata, body}`): its envelope and roster objects, normalised."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rostersync.events.catalog import ROSTER_EVENTS, ignore_reason
from rostersync.events.fields import (
    InvalidEvent,
    Json,
    hint_id,
    ignored_outcome,
    ok_outcome,
    optional_time,
    read_id,
    read_text,
    required_time,
)
from rostersync.events.models import ObjectType, ParsedEvent

__all__ = ["parse_canvas_event"]


def parse_canvas_event(document: Json) -> ParsedEvent:
    """An "ok" or "ignored" outcome for a Canvas-format event; raises InvalidEvent when malformed."""
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        raise InvalidEvent("Canvas event without a metadata object")
    event_name = metadata.get("event_name")
    if not isinstance(event_name, str) or not event_name.strip():
        raise InvalidEvent("metadata.event_name is missing")
    event_name = event_name.strip()
    body = document.get("body")
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise InvalidEvent(f"body is not an object (got {type(body).__name__})")

    warnings: list[str] = []
    object_type = ROSTER_EVENTS.get(event_name)
    if object_type is None:
        return ignored_outcome(
            ignore_reason(event_name), lambda notes: _canvas_envelope(metadata, event_name, notes), warnings
        )
    common = _canvas_envelope(metadata, event_name, warnings)
    fields = _canvas_object(object_type, body, warnings)
    return ok_outcome(common, object_type, fields, warnings)


def _canvas_envelope(metadata: Mapping[str, Any], event_name: str, warnings: list[str]) -> Json:
    context_type = read_text(metadata, "context_type")
    return {
        "format": "canvas",
        "event_name": event_name,
        "event_time": required_time(metadata, "event_time", "metadata"),
        "raw_event_id": read_text(metadata, "event_id"),
        "root_account_uuid": read_text(metadata, "root_account_uuid"),
        "root_account_id": read_id(metadata, "root_account_id", "metadata"),
        "root_account_lti_guid": read_text(metadata, "root_account_lti_guid"),
        "hostname": read_text(metadata, "hostname"),
        "actor_user_id": hint_id(metadata, "user_id", "metadata", warnings),
        "context_type": context_type,
        "context_id": hint_id(metadata, "context_id", "metadata", warnings) if context_type else None,
        "job_tag": read_text(metadata, "job_tag"),
    }


def _canvas_object(object_type: ObjectType, body: Mapping[str, Any], warnings: list[str]) -> Json:
    match object_type:
        case ObjectType.COURSE:
            course_id = read_id(body, "course_id", "body", required=True)
            return {
                "object_id": course_id,
                "course_id": course_id,
                "account_id": read_id(body, "account_id", "body"),
                "name": read_text(body, "name"),
                "workflow_state": read_text(body, "workflow_state"),
                "created_at": optional_time(body, "created_at", "body", warnings),
                "updated_at": optional_time(body, "updated_at", "body", warnings),
            }
        case ObjectType.SECTION:
            section_id = read_id(body, "course_section_id", "body", required=True)
            course_id = read_id(body, "course_id", "body")
            nonxlist_course_id = read_id(body, "nonxlist_course_id", "body")
            return {
                "object_id": section_id,
                "section_id": section_id,
                "course_id": course_id,
                "nonxlist_course_id": nonxlist_course_id,
                "cross_listed": nonxlist_course_id is not None and nonxlist_course_id != course_id,
                "name": read_text(body, "name"),
                "sis_id": read_text(body, "sis_source_id"),
                "workflow_state": read_text(body, "workflow_state"),
            }
        case ObjectType.ENROLLMENT:
            enrollment_id = read_id(body, "enrollment_id", "body", required=True)
            return {
                "object_id": enrollment_id,
                "enrollment_id": enrollment_id,
                "course_id": read_id(body, "course_id", "body"),
                "section_id": read_id(body, "course_section_id", "body"),
                "user_id": read_id(body, "user_id", "body"),
                "associated_user_id": read_id(body, "associated_user_id", "body"),
                "enrollment_type": read_text(body, "type"),
                "workflow_state": read_text(body, "workflow_state"),
                "created_at": optional_time(body, "created_at", "body", warnings),
                "updated_at": optional_time(body, "updated_at", "body", warnings),
            }
        case ObjectType.ENROLLMENT_STATE:
            enrollment_id = read_id(body, "enrollment_id", "body", required=True)
            return {
                "object_id": enrollment_id,
                "enrollment_id": enrollment_id,
                "state": read_text(body, "state"),
            }
        case ObjectType.USER:
            user_id = read_id(body, "user_id", "body", required=True)
            return {
                "object_id": user_id,
                "user_id": user_id,
                "name": read_text(body, "name"),
                "sis_id": read_text(body, "user_sis_id"),
                "login_id": read_text(body, "user_login"),
                "workflow_state": read_text(body, "workflow_state"),
                "created_at": optional_time(body, "created_at", "body", warnings),
                "updated_at": optional_time(body, "updated_at", "body", warnings),
            }
        case ObjectType.SIS_BATCH:
            sis_batch_id = read_id(body, "sis_batch_id", "body", required=True)
            return {
                "object_id": sis_batch_id,
                "sis_batch_id": sis_batch_id,
                "account_id": read_id(body, "account_id", "body"),
                "workflow_state": read_text(body, "workflow_state"),
            }
        case ObjectType.ACCOUNT:
            account_id = read_id(body, "account_id", "body", required=True)
            return {
                "object_id": account_id,
                "account_id": account_id,
                "parent_account_id": read_id(body, "parent_account_id", "body"),
                "name": read_text(body, "name"),
                "workflow_state": read_text(body, "workflow_state"),
            }
        case ObjectType.USER_ACCOUNT_ASSOCIATION:
            user_id = read_id(body, "user_id", "body", required=True)
            return {
                "object_id": user_id,
                "user_id": user_id,
                "account_id": read_id(body, "account_id", "body", required=True),
                "created_at": optional_time(body, "created_at", "body", warnings),
                "updated_at": optional_time(body, "updated_at", "body", warnings),
            }
