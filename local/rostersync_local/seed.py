"""`rostersync local seed`: what the samples under events/ name, on the running local stack.

The demo tenant (a known id) connected to the Canvas simulator through the real OAuth flow, and the
items each sample finds waiting in AWS: OAuth states at the stage each OAuth sample meets them, a run
expecting the course worker's course, a grade batch for the grade passback, a client of the delivery
API. Seeding again arms the samples again (the states unspent, the tenant due for its scheduled sync, the
worker's run expecting its course); the grade batch is submitted once, so a second passback finds its
grades already in Canvas.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from rostersync.authorization import begin_authorization, canvas_authorize_redirect, complete_authorization
from rostersync.canvas.urls import normalize_canvas_url
from rostersync.models import (
    ApiClient,
    GradeAssignment,
    GradeBatchRecord,
    GradeEntry,
    RunStatus,
    SyncRun,
    SyncTrigger,
    Tenant,
    TenantStatus,
)
from rostersync.services import Services
from rostersync.store.admins import Membership
from rostersync.store.grades import GradeStore
from rostersync.store.secrets import TenantCredentials
from rostersync_local.issuer import OPERATOR_SUBJECT, development_subject

DEMO_TENANT_ID = "tabc123def456"
DEMO_TENANT_NAME = "Demo University"
# The simulator's first course: published at the default seed (7) and at the tests'.
SAMPLE_COURSE_ID = 101
# events/admin_api_oauth_start.json opens this state; the callback samples each spend their own.
START_STATE = "example-start"
CODE_CALLBACK_STATE = "example-state"
DECLINED_CALLBACK_STATE = "example-declined"
# The host API Gateway names in the samples: the callback samples' states were opened for it.
SAMPLE_API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com"
SAMPLE_STATE_TTL_SECONDS = 86400
COURSE_WORKER_RUN_ID = "20261126T160000-a1b2c3"
GRADE_BATCH_ID = "20261126T160000-a1b2c3d4"
SAMPLE_ASSIGNMENT = GradeAssignment(external_id="sample-exam-1", name="Sample exam 1", points_possible=10)
SAMPLE_SCORES = (9.0, 7.5, 10.0)
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
# events/delivery_api_changes.json's token names this machine client of the demo tenant.
SAMPLE_CLIENT_ID = "cexample0client"


def seed_demo(services: Services, canvas_url: str, api_url: str) -> dict[str, Any]:
    """Seed the running local stack for the samples; what was seeded, as JSON."""
    tenant = services.table.get_tenant(DEMO_TENANT_ID)
    if tenant is None or tenant.status is not TenantStatus.ACTIVE:
        tenant = _connected_demo_tenant(services, canvas_url, api_url, tenant)
    services.table.set_next_sync(DEMO_TENANT_ID, LONG_AGO)  # due at the scheduler sample's tick
    # The admin samples' subjects (events/admin_api_*.json): the demo tenant's admin, and an operator.
    services.table.put_membership(
        Membership(
            tenant_id=DEMO_TENANT_ID,
            subject=development_subject(DEMO_TENANT_ID),
            email=development_subject(DEMO_TENANT_ID),
            added_at=datetime.now(UTC),
            added_by="rostersync local seed",
        )
    )
    services.table.put_operator(OPERATOR_SUBJECT, OPERATOR_SUBJECT, "rostersync local seed")
    _plant_oauth_states(services)
    services.table.put_run(
        SyncRun(
            tenant_id=DEMO_TENANT_ID,
            run_id=COURSE_WORKER_RUN_ID,
            trigger=SyncTrigger.MANUAL,
            status=RunStatus.RUNNING,
            courses_total=1,
        )
    )
    services.table.put_pending_courses(DEMO_TENANT_ID, COURSE_WORKER_RUN_ID, [SAMPLE_COURSE_ID])
    services.table.put_api_client(
        ApiClient(client_id=SAMPLE_CLIENT_ID, tenant_id=DEMO_TENANT_ID, name="Example platform")
    )
    students = _sample_students(canvas_url)
    grades = GradeStore(services.settings.table_name)
    if grades.get_batch(DEMO_TENANT_ID, GRADE_BATCH_ID) is None:  # a batch is submitted once
        record = GradeBatchRecord(
            tenant_id=DEMO_TENANT_ID,
            batch_id=GRADE_BATCH_ID,
            course_id=SAMPLE_COURSE_ID,
            assignment=SAMPLE_ASSIGNMENT,
            size=len(students),
        )
        entries = [
            GradeEntry(student=student, score=score)
            for student, score in zip(students, SAMPLE_SCORES, strict=True)
        ]
        grades.put_batch(record, entries)
    return {
        "tenant_id": tenant.tenant_id,
        "canvas_url": tenant.canvas_url,
        "root_account_uuid": tenant.root_account_uuid,
        "course_id": SAMPLE_COURSE_ID,
        "course_worker_run_id": COURSE_WORKER_RUN_ID,
        "grade_batch_id": GRADE_BATCH_ID,
        "delivery_client_id": SAMPLE_CLIENT_ID,
        "graded_students": students,
        "oauth_states": [f"{DEMO_TENANT_ID}.{state}" for state in
                         (START_STATE, CODE_CALLBACK_STATE, DECLINED_CALLBACK_STATE)],
    }  # fmt: skip


def _connected_demo_tenant(
    services: Services, canvas_url: str, api_url: str, existing: Tenant | None
) -> Tenant:
    """The demo tenant with a new developer key of the simulator, authorized as its admin would."""
    redirect_uri = f"{api_url}/oauth/callback"
    key = requests.post(
        f"{canvas_url}/_sim/developer_keys",
        json={"name": "rostersync local seed", "redirect_uri": redirect_uri},
        timeout=10,
    )
    key.raise_for_status()
    client_id, client_secret = str(key.json()["client_id"]), str(key.json()["client_secret"])
    origin = normalize_canvas_url(canvas_url, allow_insecure=True)
    credentials = TenantCredentials.model_validate(
        {"client_secret": client_secret, "canvas_origin": origin, "client_id": client_id}
    )
    tenant = Tenant(
        tenant_id=DEMO_TENANT_ID,
        name=DEMO_TENANT_NAME,
        canvas_url=origin,
        client_id=client_id,
        allow_insecure_canvas=True,
    )
    if existing is None:
        services.secrets.create(DEMO_TENANT_ID, credentials)
        services.table.create_tenant(tenant)
    else:
        services.secrets.write(DEMO_TENANT_ID, credentials)
        services.table.update_tenant_status(tenant)
    start_url = begin_authorization(
        services, DEMO_TENANT_ID, api_url, "rostersync local seed", browser_bound=False
    )
    state = parse_qs(urlsplit(start_url).query)["state"][0]
    redirect = canvas_authorize_redirect(services, state, redirect_uri)
    # The simulator approves at once and sends the browser back with a code; the seed takes it there.
    approved = requests.get(redirect.location, allow_redirects=False, timeout=10)
    code = parse_qs(urlsplit(approved.headers.get("Location", "")).query).get("code")
    if not code:
        raise RuntimeError(f"the Canvas simulator gave no authorization code ({approved.status_code})")
    return complete_authorization(services, state, code[0], None, redirect.browser_binding)


def _plant_oauth_states(services: Services) -> None:
    """A fresh state for the start sample; opened ones (as if their start link had been followed) for
    the callback samples, which carry no browser cookie, so none is browser-bound."""
    for state in (START_STATE, CODE_CALLBACK_STATE, DECLINED_CALLBACK_STATE):
        services.table.put_oauth_state(
            DEMO_TENANT_ID, state, SAMPLE_STATE_TTL_SECONDS, "rostersync local seed", browser_bound=False
        )
    for state in (CODE_CALLBACK_STATE, DECLINED_CALLBACK_STATE):
        opened = services.table.open_oauth_state(
            DEMO_TENANT_ID,
            state,
            f"{SAMPLE_API_URL}/oauth/callback",
            hashlib.sha256(state.encode()).hexdigest(),
        )
        if not opened:
            raise RuntimeError(f"could not open the sample OAuth state {state}")


def _sample_students(canvas_url: str) -> list[str]:
    """SIS ids (the demo tenant's user identifier) of the sample course's first active students."""
    truth = requests.get(f"{canvas_url}/_sim/ground_truth", timeout=30)
    truth.raise_for_status()
    users = {user["id"]: user for user in truth.json()["users"]}
    students = [
        users[enrollment["user_id"]]["sis_user_id"]
        for enrollment in truth.json()["enrollments"]
        if enrollment["course_id"] == SAMPLE_COURSE_ID
        and enrollment["type"] == "StudentEnrollment"
        and enrollment["enrollment_state"] == "active"
        and users[enrollment["user_id"]].get("sis_user_id")
    ]
    if len(students) < len(SAMPLE_SCORES):
        raise RuntimeError(f"course {SAMPLE_COURSE_ID} of the simulator has too few students to grade")
    return sorted(students)[: len(SAMPLE_SCORES)]
