"""Canvas Live Events payloads (Canvas ``{"metadata", "body"}`` format and Caliper 1.1) for simulated changes.

Shapes follow instructure/canvas-lms ``lib/canvas/live_events.rb`` and the documented examples
(``doc/api/data_services/json/{canvas,caliper}/event-types/*.json``):

* ids are strings; enrollment, user, course and account ids are GLOBAL ids (shard 1: ``10**13 + local``),
  ``course_section_*`` bodies carry LOCAL ids (``get_course_section_data`` uses ``section.id``,
  ``section.course_id``...), metadata ids are global;
* ``event_time`` is ISO 8601 UTC with milliseconds (``2019-11-01T19:11:12.546Z``);
* every change is "user-generated" (an admin's API request), so the metadata carries the acting user
  (the simulator's API user), the request and the context (Course, CourseSection or Account);
* Caliper forms exist only for enrollment_*, enrollment_state_* and course_* events; ``user_*`` and
  ``course_section_*`` are Canvas-format only (:meth:`EventFactory` returns ``caliper=None`` for them).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .model import ROOT_ACCOUNT_ID, Course, Enrollment, Institution, Section, User

JsonDict = dict[str, Any]

SHARD_ID = 1
SHARD_OFFSET = 10**13
CALIPER_CONTEXT = "http://purl.imsglobal.org/ctx/caliper/v1p1"
CANVAS_EXTENSION = "com.instructure.canvas"
URN = "urn:instructure:canvas"
# Events Canvas documents in Caliper form (of those the simulator emits).
CALIPER_EVENTS = frozenset(
    {
        "enrollment_created",
        "enrollment_updated",
        "enrollment_state_created",
        "enrollment_state_updated",
        "course_created",
        "course_updated",
    }
)


def global_id(local_id: int | None) -> str | None:
    """``565`` -> ``"10000000000565"`` (shard 1); ``None`` stays ``None``."""
    return None if local_id is None else str(SHARD_ID * SHARD_OFFSET + local_id)


def local_id(value: int | None) -> str | None:
    return None if value is None else str(value)


def iso_ms(milliseconds: int) -> str:
    """Epoch milliseconds -> ``2019-11-01T19:11:12.546Z``."""
    moment = datetime.fromtimestamp(milliseconds / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{milliseconds % 1000:03d}Z"


def parse_ms(value: str | None) -> int:
    """An ISO timestamp (``Z`` or offset, any precision) -> epoch milliseconds (0 for ``None``)."""
    if not value:
        return 0
    return round(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def caliper_action(event_name: str) -> str:
    """Caliper's action for a ``*_created`` or ``*_updated`` event."""
    return "Created" if event_name.endswith("_created") else "Modified"


def caliper_time(value: str | None) -> str | None:
    """Any ISO timestamp -> Caliper's ``2018-10-09T21:07:33.000Z``."""
    return None if value is None else iso_ms(parse_ms(value))


@dataclass(frozen=True)
class RequestInfo:
    """The HTTP request (as Canvas would have seen it) that made a change."""

    hostname: str
    scheme: str
    http_method: str
    path: str  # the Canvas URL of the action, e.g. /api/v1/sections/1001/enrollments
    request_id: str
    session_id: str
    user_agent: str | None
    client_ip: str | None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.hostname}{self.path}"


@dataclass
class LiveEvent:
    """One generated event in both formats (``caliper`` is None when Canvas has no Caliper form)."""

    name: str
    canvas: JsonDict
    caliper: JsonDict | None


def random_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class EventFactory:
    """Builds the events of one change (one simulated request). Callers hold ``state.lock``."""

    def __init__(self, inst: Institution, request: RequestInfo, next_ms: Any, rng: random.Random) -> None:
        self.inst = inst
        self.request = request
        self._next_ms = next_ms  # () -> int: strictly increasing epoch milliseconds
        self._rng = rng
        self.root = inst.accounts_by_id[ROOT_ACCOUNT_ID]
        self.actor = inst.api_user

    # ------------------------------------------------------------------ shared parts
    @property
    def lti_guid(self) -> str:
        return f"{self.root.uuid}:canvas-lms"  # what the simulator's accounts API shows as lti_guid

    def _metadata(self, event_name: str, event_time: str, context: JsonDict) -> JsonDict:
        req, actor = self.request, self.actor
        data: JsonDict = {
            "client_ip": req.client_ip,
            **context,
            "event_name": event_name,
            "event_time": event_time,
            "hostname": req.hostname,
            "http_method": req.http_method,
            "producer": "canvas",
            "referrer": None,
            "request_id": req.request_id,
            "root_account_id": global_id(self.root.id),
            "root_account_lti_guid": self.lti_guid,
            "root_account_uuid": self.root.uuid,
            "session_id": req.session_id,
            "time_zone": self.root.default_time_zone,
            "url": req.url,
            "user_account_id": global_id(self.root.id),
            "user_agent": req.user_agent,
            "user_id": global_id(actor.id),
            "user_login": actor.login_id,
            "user_sis_id": actor.sis_user_id,
        }
        return dict(sorted(data.items()))

    def _course_context(self, course: Course) -> JsonDict:
        return {
            "context_account_id": global_id(course.account_id),
            "context_id": global_id(course.id),
            "context_sis_source_id": course.sis_course_id,
            "context_type": "Course",
        }

    def _account_context(self) -> JsonDict:
        return {
            "context_account_id": global_id(self.root.id),
            "context_id": global_id(self.root.id),
            "context_sis_source_id": self.root.sis_account_id,
            "context_type": "Account",
        }

    def _section_context(self, section: Section) -> JsonDict:
        course = self.inst.courses_by_id[section.course_id]
        return {
            "context_account_id": global_id(course.account_id),
            "context_id": global_id(section.id),
            "context_sis_source_id": section.sis_section_id,
            "context_type": "CourseSection",
        }

    def _event(self, name: str, context: JsonDict, body: JsonDict, caliper: Any = None) -> LiveEvent:
        event_time = iso_ms(self._next_ms())
        canvas = {"metadata": self._metadata(name, event_time, context), "body": body}
        envelope = self._envelope(caliper(event_time)) if caliper is not None else None
        return LiveEvent(name, canvas, envelope)

    # --------------------------------------------------------------------- Caliper
    def _actor(self) -> JsonDict:
        actor = self.actor
        return {
            "id": f"{URN}:user:{global_id(actor.id)}",
            "type": "Person",
            "extensions": {
                CANVAS_EXTENSION: {
                    "user_login": actor.login_id,
                    "user_sis_id": actor.sis_user_id,
                    "root_account_id": global_id(self.root.id),
                    "root_account_lti_guid": self.lti_guid,
                    "root_account_uuid": self.root.uuid,
                    "entity_id": global_id(actor.id),
                }
            },
        }

    def _envelope(self, event: JsonDict) -> JsonDict:
        req = self.request
        sensor = f"http://{req.hostname}/"
        data: JsonDict = {
            "@context": CALIPER_CONTEXT,
            "id": f"urn:uuid:{random_uuid(self._rng)}",
            "type": "Event",
            "actor": self._actor(),
            **event,
            "edApp": {"id": sensor, "type": "SoftwareApplication"},
        }
        for key in ("group", "membership"):  # keep the documented key order
            if key in data:
                data[key] = data.pop(key)
        data["session"] = {"id": f"{URN}:session:{req.session_id}", "type": "Session"}
        data["extensions"] = {
            CANVAS_EXTENSION: {
                "hostname": req.hostname,
                "request_id": req.request_id,
                "user_agent": req.user_agent,
                "client_ip": req.client_ip,
                "request_url": req.url,
                "version": "1.0.0",
            }
        }
        return {
            "sensor": sensor,
            "sendTime": event["eventTime"],
            "dataVersion": CALIPER_CONTEXT,
            "data": [data],
        }

    def _in_group(self, event: JsonDict, course_id: int, section_id: int | None = None) -> JsonDict:
        """A Caliper event with its ``group`` (the course offering, or a section of it) and the acting
        user's ``membership`` of it."""
        course = {"id": f"{URN}:course:{global_id(course_id)}", "type": "CourseOffering"}
        organization: JsonDict = dict(course)
        if section_id is not None:
            organization = {
                "id": f"{course['id']}:section:{global_id(section_id)}",
                "type": "CourseSection",
                "subOrganizationOf": course,
            }
        group = {
            "id": organization["id"],
            "type": organization["type"],
            "extensions": {CANVAS_EXTENSION: {"context_type": "Course", "entity_id": global_id(course_id)}},
        }
        actor_id = global_id(self.actor.id)
        membership = {
            "id": f"{organization['id']}:user:{actor_id}",
            "type": "Membership",
            "member": {"id": f"{URN}:user:{actor_id}", "type": "Person"},
            "organization": organization,
        }
        return {**event, "group": group, "membership": membership}

    # ---------------------------------------------------------------------- users
    def _user_body(self, user: User) -> JsonDict:
        return {
            "created_at": user.created_at,
            "name": user.name,
            "short_name": user.short_name,
            "updated_at": user.updated_at or user.created_at,
            "user_id": global_id(user.id),
            "user_login": user.login_id,
            "user_sis_id": user.sis_user_id,
            "uuid": user_uuid(user),
            "workflow_state": user.workflow_state,
        }

    def user_created(self, user: User) -> LiveEvent:
        return self._event("user_created", self._account_context(), self._user_body(user))

    def user_updated(self, user: User) -> LiveEvent:
        return self._event("user_updated", self._account_context(), self._user_body(user))

    # ---------------------------------------------------------------- enrollments
    def _enrollment_body(self, enrollment: Enrollment) -> JsonDict:
        user = self.inst.users_by_id[enrollment.user_id]
        body: JsonDict = {}
        if enrollment.type == "ObserverEnrollment":  # lib/canvas/live_events.rb: observers only
            body["associated_user_id"] = global_id(enrollment.associated_user_id)
        body.update(
            {
                "course_id": global_id(enrollment.course_id),
                "course_section_id": global_id(enrollment.section_id),
                "created_at": enrollment.created_at,
                "enrollment_id": global_id(enrollment.id),
                "limit_privileges_to_course_section": False,
                "type": enrollment.type,
                "updated_at": enrollment.updated_at,
                "user_id": global_id(enrollment.user_id),
                "user_name": user.name,
                "workflow_state": enrollment.state,
            }
        )
        return body

    def enrollment_created(self, enrollment: Enrollment) -> LiveEvent:
        return self._enrollment_event("enrollment_created", enrollment)

    def enrollment_updated(self, enrollment: Enrollment) -> LiveEvent:
        return self._enrollment_event("enrollment_updated", enrollment)

    def _enrollment_event(self, name: str, enrollment: Enrollment) -> LiveEvent:
        course = self.inst.courses_by_id[enrollment.course_id]
        body = self._enrollment_body(enrollment)
        action = caliper_action(name)

        def build(event_time: str) -> JsonDict:
            course_urn = f"{URN}:course:{body['course_id']}"
            extension = {
                "course_id": course_urn,
                "course_section_id": f"{course_urn}:section:{body['course_section_id']}",
                "limit_privileges_to_course_section": False,
                "type": enrollment.type,
                "user_id": f"{URN}:user:{body['user_id']}",
                "user_name": body["user_name"],
                "workflow_state": enrollment.state,
                "entity_id": body["enrollment_id"],
            }
            obj: JsonDict = {
                "id": f"{URN}:enrollment:{body['enrollment_id']}",
                "type": "Entity",
                "dateCreated": caliper_time(enrollment.created_at),
            }
            if action == "Modified":
                obj["dateModified"] = caliper_time(enrollment.updated_at)
            obj["extensions"] = {CANVAS_EXTENSION: extension}
            event = {"action": action, "object": obj, "eventTime": event_time}
            return self._in_group(event, enrollment.course_id, enrollment.section_id)

        return self._event(name, self._course_context(course), body, build)

    def _state_body(self, enrollment: Enrollment, state: str, started_at: str) -> JsonDict:
        return {
            "access_is_current": True,
            "enrollment_id": global_id(enrollment.id),
            "restricted_access": False,
            "state": state,
            "state_is_current": True,
            "state_started_at": started_at,
            "state_valid_until": None,
        }

    def _enrollment_state(self, name: str, enrollment: Enrollment, state: str, started_at: str) -> LiveEvent:
        course = self.inst.courses_by_id[enrollment.course_id]
        body = self._state_body(enrollment, state, started_at)

        def build(event_time: str) -> JsonDict:
            extension = {
                "access_is_current": True,
                "restricted_access": False,
                "state": state,
                "state_is_current": True,
                "entity_id": body["enrollment_id"],
            }
            obj = {
                "id": f"{URN}:enrollment:{body['enrollment_id']}",
                "type": "Entity",
                "extensions": {CANVAS_EXTENSION: extension},
                "startedAtTime": caliper_time(started_at),
            }
            event = {"action": caliper_action(name), "object": obj, "eventTime": event_time}
            return self._in_group(event, course.id)

        return self._event(name, self._course_context(course), body, build)

    def enrollment_state_created(self, enrollment: Enrollment, state: str, started_at: str) -> LiveEvent:
        return self._enrollment_state("enrollment_state_created", enrollment, state, started_at)

    def enrollment_state_updated(self, enrollment: Enrollment, state: str, started_at: str) -> LiveEvent:
        return self._enrollment_state("enrollment_state_updated", enrollment, state, started_at)

    # -------------------------------------------------------------------- courses
    def course_updated(self, course: Course) -> LiveEvent:
        body = {
            "account_id": global_id(course.account_id),
            "course_id": global_id(course.id),
            "created_at": course.created_at,
            "name": course.name,
            "updated_at": course.updated_at or course.created_at,
            "uuid": course.uuid,
            "workflow_state": course.db_state,  # the DB name (available, claimed...), not the API's
        }

        def build(event_time: str) -> JsonDict:
            obj = {
                "id": f"{URN}:course:{body['course_id']}",
                "type": "CourseOffering",
                "name": course.name,
                "extensions": {
                    CANVAS_EXTENSION: {"entity_id": body["course_id"], "workflow_state": course.db_state}
                },
            }
            return {"action": "Modified", "object": obj, "eventTime": event_time}

        return self._event("course_updated", self._course_context(course), body, build)

    # ------------------------------------------------------------------- sections
    def course_section_updated(self, section: Section) -> LiveEvent:
        inst = self.inst
        course = inst.courses_by_id[section.course_id]
        siblings = [
            s for s in inst.sections_by_course.get(section.course_id, []) if s.workflow_state == "active"
        ]
        default = (
            section.nonxlist_course_id is None
            and min((s.id for s in siblings if s.nonxlist_course_id is None), default=None) == section.id
        )
        stuck = ["course_id"] if section.nonxlist_course_id is not None and section.sis_section_id else []
        body = {
            "accepting_enrollments": None,
            "can_manually_enroll": None,
            "course_id": local_id(section.course_id),
            "course_section_id": local_id(section.id),
            "default_section": default,
            "end_at": None,
            "enrollment_term_id": local_id(course.term_id),
            "integration_id": None,
            "name": section.name,
            "nonxlist_course_id": local_id(section.nonxlist_course_id),
            "restrict_enrollments_to_section_dates": False,
            "root_account_id": local_id(ROOT_ACCOUNT_ID),
            "sis_batch_id": local_id(section.sis_import_id),
            "sis_source_id": section.sis_section_id,
            "start_at": None,
            "stuck_sis_fields": stuck,
            "workflow_state": section.workflow_state,
        }
        return self._event("course_section_updated", self._section_context(section), body)


def user_uuid(user: User) -> str:
    """The user's 40-character uuid (the same value ``include[]=uuid`` shows in the users API)."""
    return f"{user.id:040d}"
