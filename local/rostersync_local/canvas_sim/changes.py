"""``/_sim/changes/*``: change the institution like an admin would, and emit the live events Canvas would.

Every handler runs under ``state.lock`` (the app holds it for admin routes). Each change stamps the objects
it changes with ``updated_at`` from :meth:`SimulatorState.change_ms` (epoch ms, strictly increasing across
the simulator, so two changes within one millisecond still order) and gives each event its own, later,
``event_time``. A change that changes nothing emits nothing (Canvas emits ``*_updated`` only when a body
field changed). Answers list the ``events`` emitted as ``[{"seq", "event_name"}]``.

``/_sim/live_events*`` and ``/_sim/jwks.json``: delivery settings, the event log, flushing, signing keys.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from werkzeug.wrappers import Request, Response

from .config import SimulatorConfig
from .live_events import EventFactory, LiveEvent, RequestInfo, iso_ms, random_uuid
from .model import (
    DESIGNER_ROLE_ID,
    OBSERVER_ROLE_ID,
    STUDENT_ROLE_ID,
    TA_ROLE_ID,
    TEACHER_ROLE_ID,
    Course,
    Enrollment,
    Section,
    User,
)
from .serialize import iso
from .state import SimulatorState
from .web import json_response, sim_error, sim_json_body

ENROLLMENT_ROLE_IDS = {
    "StudentEnrollment": STUDENT_ROLE_ID,
    "TeacherEnrollment": TEACHER_ROLE_ID,
    "TaEnrollment": TA_ROLE_ID,
    "DesignerEnrollment": DESIGNER_ROLE_ID,
    "ObserverEnrollment": OBSERVER_ROLE_ID,
}
ENROLL_STATES = ("active", "invited", "inactive", "completed", "creation_pending")
DROP_STATES = ("deleted", "inactive", "completed")
# Canvas's EnrollmentState.state for an enrollment's workflow_state (dates ignored: the simulator's
# enrollments have no own dates and their terms are current).
ACCESS_STATE = {"creation_pending": "pending_invited"}


# ---------------------------------------------------------------------------------------- helpers
def _int(body: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise sim_error(f"{name} must be an integer id")
    return value


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise sim_error(f"{name} must be a non-empty string")
    return value.strip()


def _course(state: SimulatorState, course_id: int | None) -> Course:
    course = state.institution.courses_by_id.get(course_id or -1)
    if course is None or course.db_state == "deleted":
        raise sim_error(f"no course {course_id}", 404)
    return course


def _section(state: SimulatorState, section_id: int | None) -> Section:
    section = state.institution.sections_by_id.get(section_id or -1)
    if section is None or section.workflow_state == "deleted":
        raise sim_error(f"no section {section_id}", 404)
    return section


def _enrollment(state: SimulatorState, enrollment_id: int | None) -> Enrollment:
    found = next((e for e in state.institution.enrollments if e.id == enrollment_id), None)
    if found is None:
        raise sim_error(f"no enrollment {enrollment_id}", 404)
    return found


def _factory(request: Request, state: SimulatorState, method: str, path: str) -> EventFactory:
    rng = state.event_ids_rng
    info = RequestInfo(
        hostname=state.config.live_events_hostname or request.host,
        scheme=request.scheme,
        http_method=method,
        path=path,
        request_id=random_uuid(rng),
        session_id=f"{rng.getrandbits(128):032x}",
        user_agent=request.user_agent.string or None,
        client_ip=request.remote_addr,
    )
    return EventFactory(state.institution, info, state.change_ms, rng)


def _publish(state: SimulatorState, events: list[LiveEvent]) -> list[dict[str, Any]]:
    seqs = state.live_events.publish(events)
    return [{"seq": seq, "event_name": event.name} for seq, event in zip(seqs, events, strict=True)]


def _access_state(state: str) -> str:
    return ACCESS_STATE.get(state, state)


def _new_user(state: SimulatorState, spec: Any, created_ms: int) -> User:
    if not isinstance(spec, dict):
        raise sim_error("user must be an object")
    first, last = _text(spec, "first_name", required=True), _text(spec, "last_name", required=True)
    email, sis = _text(spec, "email"), _text(spec, "sis_user_id")
    inst = state.institution
    everyone = [inst.api_user, *inst.users]
    if sis is not None and any(u.sis_user_id == sis for u in everyone):
        raise sim_error(f"sis_user_id {sis!r} is already taken")
    logins = {u.login_id for u in everyone}
    base = email or f"{first}.{last}".lower().replace(" ", "")
    login, suffix = base, 2
    while login in logins:
        login, suffix = f"{base}{suffix}", suffix + 1
    user = User(
        id=max(u.id for u in everyone) + 1,
        first_name=str(first),
        last_name=str(last),
        sis_user_id=sis,
        login_id=login,
        email=email,
        created_at=iso(created_ms / 1000),
        sis_import_id=None,
        workflow_state="pre_registered",  # created by an admin, has not logged in yet
        updated_at=iso_ms(created_ms),
    )
    inst.users.append(user)
    inst.users_by_id[user.id] = user
    return user


def _add_enrollment(
    state: SimulatorState,
    factory: EventFactory,
    user: User,
    section: Section,
    *,
    etype: str,
    wanted: str,
    associated_user_id: int | None,
) -> tuple[Enrollment, list[LiveEvent], bool]:
    """Enroll ``user`` like ``Course#enroll_user``: an existing enrollment of the same user, section, type
    (and observee) is updated instead of adding a second one. Returns (enrollment, events, created)."""
    inst = state.institution
    existing = next(
        (
            e
            for e in inst.enrollments_by_section.get(section.id, [])
            if e.user_id == user.id and e.type == etype and e.associated_user_id == associated_user_id
        ),
        None,
    )
    if existing is not None:
        return existing, _set_enrollment_state(factory, state, existing, wanted), False
    ms = state.change_ms()
    enrollment = Enrollment(
        id=max((e.id for e in inst.enrollments), default=50000) + 1,
        user_id=user.id,
        course_id=section.course_id,
        section_id=section.id,
        type=etype,
        role_id=ENROLLMENT_ROLE_IDS[etype],
        state=wanted,
        created_at=iso(ms / 1000),
        updated_at=iso_ms(ms),
        associated_user_id=associated_user_id,
    )
    inst.enrollments.append(enrollment)
    inst.reindex()
    events = [
        factory.enrollment_created(enrollment),
        factory.enrollment_state_created(enrollment, _access_state(wanted), enrollment.updated_at),
    ]
    return enrollment, events, True


def _set_enrollment_state(
    factory: EventFactory, state: SimulatorState, enrollment: Enrollment, wanted: str
) -> list[LiveEvent]:
    if enrollment.state == wanted:
        return []
    enrollment.state = wanted
    enrollment.updated_at = iso_ms(state.change_ms(enrollment.updated_at))
    return [
        factory.enrollment_updated(enrollment),
        factory.enrollment_state_updated(enrollment, _access_state(wanted), enrollment.updated_at),
    ]


def _default_section(state: SimulatorState, course: Course) -> Section:
    sections = [
        s for s in state.institution.sections_by_course.get(course.id, []) if s.workflow_state == "active"
    ]
    if not sections:
        raise sim_error(f"course {course.id} has no active section")
    own = [s for s in sections if s.nonxlist_course_id is None]
    return min(own or sections, key=lambda s: s.id)


# ---------------------------------------------------------------------------------------- changes
def enroll(request: Request, state: SimulatorState) -> Response:
    """``{"course_id", "section_id"?, "user_id"? | "user": {"first_name", "last_name", "email"?,
    "sis_user_id"?}, "type": "StudentEnrollment", "state": "active", "associated_user_id"?}``."""
    body = sim_json_body(request)
    course = _course(state, _int(body, "course_id"))
    section_id = _int(body, "section_id", required=False)
    section = _default_section(state, course) if section_id is None else _section(state, section_id)
    if section.course_id != course.id:
        raise sim_error(f"section {section.id} is not in course {course.id}")
    etype = body.get("type", "StudentEnrollment")
    if etype not in ENROLLMENT_ROLE_IDS:
        raise sim_error(f"type must be one of {', '.join(ENROLLMENT_ROLE_IDS)}")
    wanted = body.get("state", "active")
    if wanted not in ENROLL_STATES:
        raise sim_error(f"state must be one of {', '.join(ENROLL_STATES)}")
    if ("user_id" in body) == ("user" in body):
        raise sim_error("give exactly one of user_id or user")
    associated = _int(body, "associated_user_id", required=False)
    if associated is not None and (
        etype != "ObserverEnrollment" or associated not in state.institution.users_by_id
    ):
        raise sim_error("associated_user_id needs an ObserverEnrollment and an existing user")
    factory = _factory(request, state, "POST", f"/api/v1/sections/{section.id}/enrollments")
    events: list[LiveEvent] = []
    if "user" in body:
        user = _new_user(state, body["user"], state.change_ms())
        events.append(factory.user_created(user))
    else:
        user_id = _int(body, "user_id")
        found = state.institution.users_by_id.get(user_id or -1)
        if found is None:
            raise sim_error(f"no user {user_id}", 404)
        user = found
    enrollment, enrollment_events, created = _add_enrollment(
        state, factory, user, section, etype=etype, wanted=wanted, associated_user_id=associated
    )
    events += enrollment_events
    state.institution.reindex()
    return json_response(
        {
            "user_id": user.id,
            "user_created": "user" in body,
            "enrollment_id": enrollment.id,
            "enrollment_created": created,
            "course_id": course.id,
            "section_id": section.id,
            "events": _publish(state, events),
        },
        201 if created else 200,
    )


def drop(request: Request, state: SimulatorState) -> Response:
    """``{"enrollment_id", "state": "deleted" | "inactive" | "completed"}`` (default "deleted")."""
    body = sim_json_body(request)
    enrollment = _enrollment(state, _int(body, "enrollment_id"))
    wanted = body.get("state", "deleted")
    if wanted not in DROP_STATES:
        raise sim_error(f"state must be one of {', '.join(DROP_STATES)}")
    task = {"deleted": "delete", "inactive": "deactivate", "completed": "conclude"}[wanted]
    path = f"/api/v1/courses/{enrollment.course_id}/enrollments/{enrollment.id}?task={task}"
    factory = _factory(request, state, "DELETE", path)
    events = _set_enrollment_state(factory, state, enrollment, wanted)
    return json_response(
        {"enrollment_id": enrollment.id, "state": enrollment.state, "events": _publish(state, events)}
    )


def move(request: Request, state: SimulatorState) -> Response:
    """``{"enrollment_id", "section_id"}``: Canvas moves an enrollment to another section of its course by
    enrolling the user in the new section and deleting the old enrollment (both sets of events)."""
    body = sim_json_body(request)
    old = _enrollment(state, _int(body, "enrollment_id"))
    target = _section(state, _int(body, "section_id"))
    if old.state == "deleted":
        raise sim_error(f"enrollment {old.id} is deleted")
    if target.course_id != old.course_id:
        raise sim_error(f"section {target.id} is not in course {old.course_id}")
    if target.id == old.section_id:
        raise sim_error(f"enrollment {old.id} is already in section {target.id}")
    user = state.institution.users_by_id[old.user_id]
    factory = _factory(request, state, "POST", f"/api/v1/sections/{target.id}/enrollments")
    new, events, created = _add_enrollment(
        state,
        factory,
        user,
        target,
        etype=old.type,
        wanted=old.state,
        associated_user_id=old.associated_user_id,
    )
    drop_factory = _factory(
        request, state, "DELETE", f"/api/v1/courses/{old.course_id}/enrollments/{old.id}?task=delete"
    )
    events += _set_enrollment_state(drop_factory, state, old, "deleted")
    state.institution.reindex()
    return json_response(
        {
            "old_enrollment_id": old.id,
            "enrollment_id": new.id,
            "enrollment_created": created,
            "section_id": target.id,
            "events": _publish(state, events),
        }
    )


def rename_user(request: Request, state: SimulatorState) -> Response:
    """``{"user_id", "first_name"?, "last_name"?}`` -> ``user_updated`` (when the name changed)."""
    body = sim_json_body(request)
    user_id = _int(body, "user_id")
    user = state.institution.users_by_id.get(user_id or -1)
    if user is None:
        raise sim_error(f"no user {user_id}", 404)
    first, last = _text(body, "first_name"), _text(body, "last_name")
    if first is None and last is None:
        raise sim_error("give first_name and/or last_name")
    events: list[LiveEvent] = []
    new_first, new_last = first or user.first_name, last or user.last_name
    if (new_first, new_last) != (user.first_name, user.last_name):
        factory = _factory(request, state, "PUT", f"/api/v1/users/{user.id}")
        user.first_name, user.last_name = new_first, new_last
        user.updated_at = iso_ms(state.change_ms(user.updated_at, user.created_at))
        events.append(factory.user_updated(user))
    return json_response(
        {
            "user_id": user.id,
            "name": user.name,
            "updated_at": user.updated_at,
            "events": _publish(state, events),
        }
    )


def rename_course(request: Request, state: SimulatorState) -> Response:
    """``{"course_id", "name"}`` -> ``course_updated`` (when the name changed)."""
    body = sim_json_body(request)
    course = _course(state, _int(body, "course_id"))
    name = _text(body, "name", required=True)
    events: list[LiveEvent] = []
    if name != course.name:
        factory = _factory(request, state, "PUT", f"/api/v1/courses/{course.id}")
        course.name = str(name)
        course.updated_at = iso_ms(state.change_ms(course.updated_at, course.created_at))
        events.append(factory.course_updated(course))
    return json_response(
        {
            "course_id": course.id,
            "name": course.name,
            "updated_at": course.updated_at,
            "events": _publish(state, events),
        }
    )


def crosslist(request: Request, state: SimulatorState) -> Response:
    """``{"section_id", "target_course_id", "enrollment_events"?: false}``: move the section (and its
    enrollments) to another course -> ``course_section_updated``.

    Canvas (``CourseSection#move_to_course``) moves the enrollments with ``update_all``, which runs no
    callbacks: no ``enrollment_updated`` is emitted. ``"enrollment_events": true`` emits one per moved
    enrollment anyway. Cross-listing back to the original course (``nonxlist_course_id``) de-cross-lists.
    """
    body = sim_json_body(request)
    section = _section(state, _int(body, "section_id"))
    target = _course(state, _int(body, "target_course_id"))
    with_enrollments = body.get("enrollment_events", False)
    if not isinstance(with_enrollments, bool):
        raise sim_error("enrollment_events must be a boolean")
    if target.id == section.course_id:
        raise sim_error(f"section {section.id} is already in course {target.id}")
    inst = state.institution
    factory = _factory(request, state, "POST", f"/api/v1/sections/{section.id}/crosslist/{target.id}")
    if target.id == section.nonxlist_course_id:
        section.nonxlist_course_id = None
    elif section.nonxlist_course_id is None:
        section.nonxlist_course_id = section.course_id
    section.course_id = target.id
    section.updated_at = iso_ms(state.change_ms(section.updated_at, section.created_at))
    moved = list(inst.enrollments_by_section.get(section.id, []))
    for enrollment in moved:
        enrollment.course_id = target.id
        enrollment.updated_at = iso_ms(state.change_ms(enrollment.updated_at))
    inst.reindex()
    events = [factory.course_section_updated(section)]
    if with_enrollments:
        events += [factory.enrollment_updated(e) for e in moved]
    return json_response(
        {
            "section_id": section.id,
            "course_id": section.course_id,
            "nonxlist_course_id": section.nonxlist_course_id,
            "moved_enrollment_ids": [e.id for e in moved],
            "events": _publish(state, events),
        }
    )


# -------------------------------------------------------------------------------- live-event admin
# ``POST /_sim/live_events`` keys -> SimulatorConfig fields, with their JSON types.
LIVE_EVENT_SETTINGS: dict[str, tuple[str, str]] = {
    "sqs_queue_url": ("live_events_sqs_queue_url", "url"),
    "aws_endpoint_url": ("live_events_aws_endpoint_url", "url"),
    "http_url": ("live_events_http_url", "url"),
    "format": ("live_events_format", "format"),
    "signed": ("live_events_signed", "bool"),
    "duplicate_rate": ("live_events_duplicate_rate", "number"),
    "loss_rate": ("live_events_loss_rate", "number"),
    "reorder_window": ("live_events_reorder_window", "int"),
    "seed": ("live_events_seed", "seed"),
    "hostname": ("live_events_hostname", "url"),
    "http_timeout_seconds": ("live_events_http_timeout_seconds", "number"),
    "retries": ("live_events_retries", "int"),
    "retry_backoff_seconds": ("live_events_retry_backoff_seconds", "number"),
}


def _live_setting(name: str, kind: str, value: Any) -> Any:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind == "url":
        if value is not None and not (isinstance(value, str) and value):
            raise sim_error(f"{name} must be a non-empty string or null")
        return value
    if kind == "format":
        if value not in ("canvas", "caliper"):
            raise sim_error("format must be 'canvas' or 'caliper'")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise sim_error(f"{name} must be a boolean")
        return value
    if kind == "number":
        if not (is_int or isinstance(value, float)):
            raise sim_error(f"{name} must be a number")
        return float(value)
    if kind == "int":
        if not is_int:
            raise sim_error(f"{name} must be an integer")
        return value
    if value is not None and not is_int:  # seed
        raise sim_error("seed must be an integer or null")
    return value


def live_event_settings(config: SimulatorConfig) -> dict[str, Any]:
    return {name: getattr(config, field) for name, (field, _) in LIVE_EVENT_SETTINGS.items()}


def get_live_events(request: Request, state: SimulatorState) -> Response:
    return json_response({**live_event_settings(state.config), "stats": state.live_events.stats()})


def update_live_events(request: Request, state: SimulatorState) -> Response:
    """Change delivery settings (all-or-nothing). Posting ``seed`` (even the same) restarts the draws."""
    body = sim_json_body(request)
    unknown = set(body) - set(LIVE_EVENT_SETTINGS)
    if unknown:
        raise sim_error(f"unsupported live_events keys: {sorted(unknown)}")
    changes = {
        LIVE_EVENT_SETTINGS[k][0]: _live_setting(k, LIVE_EVENT_SETTINGS[k][1], v) for k, v in body.items()
    }
    try:
        candidate = dataclasses.replace(state.config, **changes)
    except ValueError as exc:
        raise sim_error(str(exc)) from exc
    for name in changes:  # the same object: the dispatcher reads it live
        setattr(state.config, name, getattr(candidate, name))
    if "seed" in body:
        state.live_events.reseed()
    return get_live_events(request, state)


def live_events_log(request: Request, state: SimulatorState) -> Response:
    """Every generated event in generation order; ``?since=<seq>`` = only later ones."""
    since = request.args.get("since", "0")
    if not (since.isascii() and since.isdigit()):
        raise sim_error("since must be a non-negative integer")
    return json_response(state.live_events.log(int(since)))


def flush_live_events(request: Request, state: SimulatorState) -> Response:
    """Release the reorder buffer and wait (``{"timeout_seconds": 30}``) until every send finished."""
    timeout = sim_json_body(request).get("timeout_seconds", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise sim_error("timeout_seconds must be a non-negative number")
    result = state.live_events.flush(float(timeout))
    return json_response({**result, "stats": state.live_events.stats()}, 200 if result["drained"] else 504)


def jwks(request: Request, state: SimulatorState) -> Response:
    return json_response(state.live_events.signer.jwks())


def rotate_key(request: Request, state: SimulatorState) -> Response:
    return json_response(state.live_events.signer.rotate())


def sign_live_event(request: Request, state: SimulatorState) -> Response:
    """A posted event signed as the HTTPS delivery signs events (the current key, valid 10 minutes):
    a signed sample for `rostersync local signed-event`."""
    event = sim_json_body(request)
    if not event:
        raise sim_error("post the event to sign as a JSON object")
    return json_response({"token": state.live_events.signer.sign(event, state.live_events.clock())})


# Handlers that must not run under ``state.lock`` (they wait, or only touch the dispatcher).
for _handler in (live_events_log, flush_live_events, jwks, rotate_key, sign_live_event):
    _handler.without_state_lock = True  # type: ignore[attr-defined]

CHANGE_ROUTES = (
    ("POST", "/_sim/changes/enroll", enroll),
    ("POST", "/_sim/changes/drop", drop),
    ("POST", "/_sim/changes/move", move),
    ("POST", "/_sim/changes/rename_user", rename_user),
    ("POST", "/_sim/changes/rename_course", rename_course),
    ("POST", "/_sim/changes/crosslist", crosslist),
    ("GET", "/_sim/live_events", get_live_events),
    ("POST", "/_sim/live_events", update_live_events),
    ("GET", "/_sim/live_events/log", live_events_log),
    ("POST", "/_sim/live_events/flush", flush_live_events),
    ("POST", "/_sim/live_events/rotate_key", rotate_key),
    ("POST", "/_sim/live_events/sign", sign_live_event),
    ("GET", "/_sim/jwks.json", jwks),
)
