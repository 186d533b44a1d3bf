"""`rostersync`: operate the service, locally or against a deployed stack.

Contracts other tools rely on are in docs/architecture.md ("Contracts for scripts").
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from botocore.exceptions import BotoCoreError, ClientError

from rostersync.authorization import begin_authorization
from rostersync.canvas.errors import CanvasError
from rostersync.canvas.scopes import required_scopes
from rostersync.events.apply import route_to_tenants
from rostersync.machine_clients import (
    DeliveryAudience,
    add_machine_client,
    register_existing_client,
    remove_machine_client,
    sync_audience,
)
from rostersync.models import CourseIdField, SyncTrigger, TenantSettings, TenantStatus, UserIdField
from rostersync.store.admins import Membership
from rostersync.store.api_authorizer import ApiAuthorizer, AuthorizerNotFoundError
from rostersync.store.dead_letters import DeadLetter, DeadLetterQueues
from rostersync.store.user_pool import UserPool
from rostersync.sync.holds import approve_hold, decided_holds, pending_holds, reject_hold
from rostersync.sync.reports import export_roster, run_summary, sync_errors, sync_errors_csv
from rostersync.sync.requesting import SyncCooldownError, request_sync
from rostersync.tenant_settings import (
    ConfirmationNeededError,
    SyncListMode,
    canvas_accounts,
    canvas_course_roles,
    canvas_terms_seen,
    configure_tenant,
    parse_course_list_csv,
    update_sync_list,
)
from rostersync.tenants import TenantError, create_tenant, remove_tenant, require_tenant
from rostersync_cli import output
from rostersync_cli.admins_cli import add_admin_commands
from rostersync_cli.events_cli import add_events_commands, parse_file
from rostersync_cli.files import read_text_file
from rostersync_cli.grades_cli import add_grades_commands
from rostersync_cli.local_cli import add_sam_local_commands, admin_event
from rostersync_cli.stack import NoStackError, StackBinding, bind, describe_aws_error
from rostersync_local.control import default_state_dir, public_endpoints, read_state, start_stack, stop_stack

# `sync run --wait` prints progress this often (each print reads every course result of the run).
WAIT_PROGRESS_SECONDS = 5.0


class CliError(Exception):
    pass


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _local_time(moment: datetime) -> str:
    """A moment in the operator's own time zone, as they read a clock."""
    return f"{moment.astimezone():%Y-%m-%d %H:%M:%S %Z}"


def _binding(arguments: argparse.Namespace) -> StackBinding:
    return bind(arguments.state_dir, arguments.stack)


# -- local -------------------------------------------------------------------------------------
def cmd_local_up(arguments: argparse.Namespace) -> None:
    state = start_stack(
        arguments.state_dir,
        canvas_sim=not arguments.no_canvas_sim,
        seed=arguments.seed,
        courses=arguments.courses,
        retry_delay_seconds=arguments.retry_delay_seconds,
        aws_port=arguments.aws_port,
        canvas_port=arguments.canvas_port,
        functions=not arguments.no_functions,
    )
    endpoints = public_endpoints(state)
    extra = {
        # What a Canvas developer key and Canvas's live events must point at.
        "redirect_uri": f"{state['api_url']}/oauth/callback",
        "live_events_url": f"{state['api_url']}/live-events",
        "live_events_queue_url": state["outputs"]["LiveEventsQueueUrl"],
    }
    if "canvas_url" in state and not arguments.no_live_events and not arguments.no_functions:
        # The simulator sends its live events to the stack's queue, as Canvas Data Services would.
        requests.post(
            f"{state['canvas_url']}/_sim/live_events",
            json={
                "sqs_queue_url": extra["live_events_queue_url"],
                "aws_endpoint_url": state["aws_endpoint_url"],
            },
            timeout=30,
        ).raise_for_status()
    print(json.dumps(endpoints | extra))


def cmd_local_down(arguments: argparse.Namespace) -> None:
    if not stop_stack(arguments.state_dir):
        print("no local stack was running", file=sys.stderr)
        return
    # moto keeps AWS in memory: nothing of the stack survives it.
    print("local stack stopped; its tenants, rosters, runs and secrets are gone with it", file=sys.stderr)


def cmd_local_dev_key(arguments: argparse.Namespace) -> None:
    """A developer key in the Canvas simulator, made as a Canvas admin makes one, for `tenant add`."""
    state = read_state(arguments.state_dir)
    if state is None or "canvas_url" not in state:
        raise CliError(
            "no local stack with the Canvas simulator is running (start one with `rostersync local up`)"
        )
    redirect_uri = f"{state['api_url']}/oauth/callback"
    key = requests.post(
        f"{state['canvas_url']}/_sim/developer_keys",
        json={"name": arguments.name, "redirect_uri": redirect_uri},
        timeout=30,
    )
    key.raise_for_status()
    created = key.json()
    made = {"canvas_url": state["canvas_url"], "redirect_uri": redirect_uri}
    print(json.dumps(made | {name: created[name] for name in ("client_id", "client_secret")}))
    print(
        "next: rostersync tenant add --name NAME --canvas-url CANVAS_URL --client-id CLIENT_ID "
        "--client-secret - --allow-insecure-canvas   (the secret on stdin)",
        file=sys.stderr,
    )


def cmd_local_status(arguments: argparse.Namespace) -> None:
    state = read_state(arguments.state_dir)
    if state is None:
        raise CliError("no local stack is running")
    functions = requests.get(f"{state['control_url']}/status", timeout=10).json()
    _print_json({**public_endpoints(state), "functions": functions})


def cmd_admin_token(arguments: argparse.Namespace) -> None:
    if arguments.event:
        _print_json(admin_event(arguments))
        return
    if not arguments.tenant:
        raise CliError(
            "give --tenant (only --event has a default: the demo tenant of `rostersync local seed`)"
        )
    state = read_state(arguments.state_dir)
    if state is None:
        raise CliError(
            "development tokens come from the local stack's identity provider; "
            "start it with rostersync local up"
        )
    from rostersync_local.issuer import development_subject

    # The token's subject is made an admin of the tenant (an operator with --operator), as
    # `admin invite` would; the token skips only the sign-in.
    subject = development_subject(arguments.tenant, operator=arguments.operator)
    table = _binding(arguments).services.table
    if arguments.operator:
        table.put_operator(subject, subject, "rostersync admin token")
    else:
        table.put_membership(
            Membership(
                tenant_id=arguments.tenant,
                subject=subject,
                email=subject,
                added_at=datetime.now(UTC),
                added_by="rostersync admin token",
            )
        )
    response = requests.post(f"{state['control_url']}/tokens", json={"subject": subject}, timeout=10)
    response.raise_for_status()
    token = response.json()["token"]
    # Development only: the local stack's page takes the token from the fragment (never sent to a server).
    print(f"{state['api_url']}/console#access_token={token}" if arguments.console_url else token)


# The template's sync scheduler tick (function and event), what `local fire` fires unless told otherwise.
FULL_SYNC_SCHEDULE = "SyncSchedulerFunctionFullSync"


def cmd_local_fire(arguments: argparse.Namespace) -> None:
    state = read_state(arguments.state_dir)
    if state is None:
        raise CliError("no local stack is running")
    if not state["schedules"]:
        raise CliError(
            "this local stack runs no functions (--no-functions): invoke the scheduler with sam local"
        )
    schedules = state["schedules"]
    name = arguments.schedule or (FULL_SYNC_SCHEDULE if FULL_SYNC_SCHEDULE in schedules else schedules[0])
    response = requests.post(f"{state['control_url']}/schedules/{name}/fire", timeout=120)
    _print_json(response.json())
    if response.status_code != 200:
        raise CliError(f"schedule {name} failed")


# -- tenants -----------------------------------------------------------------------------------
def _secret_argument(value: str) -> str:
    # "-" reads it from stdin, so it never shows in the process list or shell history.
    return sys.stdin.readline().strip() if value == "-" else value


def cmd_tenant_add(arguments: argparse.Namespace) -> None:
    binding = _binding(arguments)
    tenant = create_tenant(
        binding.services,
        name=arguments.name,
        canvas_url=arguments.canvas_url,
        client_id=arguments.client_id,
        client_secret=_secret_argument(arguments.client_secret) if arguments.client_secret else None,
        allow_insecure_canvas=arguments.allow_insecure_canvas,
        settings=TenantSettings(user_id_field=UserIdField(arguments.user_id_field)),
    )
    print(tenant.tenant_id)


def _role_assignments(pairs: list[str]) -> dict[str, str]:
    assignments = {}
    for pair in pairs:
        name, separator, role = pair.rpartition("=")
        if not separator or not name:
            raise CliError(f"--role takes NAME=ROLE, e.g. 'Lab Student=student', not {pair!r}")
        assignments[name] = role
    return assignments


def _account_number(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an account number: give the number in the account's Canvas address "
            "(/accounts/N), not its name; 0 for the root account"
        )
    return int(value)


def cmd_tenant_configure(arguments: argparse.Namespace) -> None:
    services = _binding(arguments).services
    current = require_tenant(services, arguments.tenant).settings
    changes: dict[str, object] = {}
    for name in ("course_id_field", "user_id_field", "mass_drop_threshold", "mass_drop_min_enrollments"):
        if getattr(arguments, name) is not None:
            changes[name] = getattr(arguments, name)
    if arguments.role or arguments.clear_role:
        overrides = {**current.role_overrides, **_role_assignments(arguments.role)}
        for name in arguments.clear_role:
            overrides.pop(name, None)
        changes["role_overrides"] = overrides
    courses = current.courses.model_dump()
    if arguments.account_id is not None:
        courses["account_id"] = arguments.account_id or None
    if arguments.term_id is not None:
        courses["term_ids"] = tuple(arguments.term_id)
    if arguments.published_only is not None:
        courses["published_only"] = arguments.published_only
    changes["courses"] = courses
    if (
        arguments.every_minutes is not None
        or arguments.daily_at is not None
        or arguments.timezone is not None
    ):
        schedule = current.schedule.model_dump()
        if arguments.every_minutes is not None:
            schedule.update(every_minutes=arguments.every_minutes, daily_at=None)
        if arguments.daily_at is not None:
            schedule.update(daily_at=arguments.daily_at, every_minutes=None)
        if arguments.timezone is not None:
            schedule["timezone"] = arguments.timezone
        changes["schedule"] = schedule
    tenant = configure_tenant(services, arguments.tenant, changes)
    _print_json(tenant.settings.model_dump(mode="json"))
    if "schedule" in changes and tenant.next_sync_at is not None:
        print(f"next scheduled full sync: {_local_time(tenant.next_sync_at)}", file=sys.stderr)


def cmd_tenant_list(arguments: argparse.Namespace) -> None:
    tenants = _binding(arguments).services.table.list_tenants()
    output.emit(
        arguments,
        [tenant.model_dump(mode="json") for tenant in tenants],
        ["TENANT", "NAME", "STATUS", "CANVAS", "NEXT SYNC"],
        lambda: [[t.tenant_id, t.name, t.status.value, t.canvas_url, t.next_sync_at] for t in tenants],
        empty="no tenants yet (rostersync tenant add --name N)",
    )


def cmd_tenant_show(arguments: argparse.Namespace) -> None:
    _print_json(require_tenant(_binding(arguments).services, arguments.tenant).model_dump(mode="json"))


def cmd_tenant_authorize(arguments: argparse.Namespace) -> None:
    binding = _binding(arguments)
    # A contract for scripts: a plain HTTP client following the redirects completes it (no cookie needed).
    link = begin_authorization(
        binding.services, arguments.tenant, binding.api_url, "operator (CLI)", browser_bound=False
    )
    print(link)


def cmd_tenant_remove(arguments: argparse.Namespace) -> None:
    services = _binding(arguments).services
    tenant = require_tenant(services, arguments.tenant)
    if not arguments.yes:
        raise CliError(
            f"this deletes {tenant.name} ({tenant.tenant_id}), its rosters and its secret; add --yes"
        )
    _print_json({"tenant": tenant.tenant_id, "removed_items": remove_tenant(services, tenant.tenant_id)})


# -- machine clients of the delivery API ----------------------------------------------------------
def _user_pool(binding: StackBinding) -> UserPool | None:
    pool_id = binding.outputs.get("AdminUserPoolId")
    return UserPool(pool_id) if pool_id else None


def _delivery_audience(binding: StackBinding) -> DeliveryAudience:
    missing = [name for name in ("HttpApiId", "ClientJwtAudience") if not binding.outputs.get(name)]
    if missing:
        raise CliError(
            f"the stack has no {' or '.join(missing)} output: deploy this version of template.yaml first"
        )
    return DeliveryAudience(ApiAuthorizer(binding.outputs["HttpApiId"]), binding.outputs["ClientJwtAudience"])


def cmd_client_add(arguments: argparse.Namespace) -> None:
    binding = _binding(arguments)
    pool = _user_pool(binding)
    audience = _delivery_audience(binding)
    if arguments.client_id:
        if pool is not None:
            raise CliError(
                "--client-id is for a stack whose clients an institution's IdP issues; this stack's own "
                "user pool makes them: leave it out"
            )
        register_existing_client(
            binding.services, audience, arguments.tenant, arguments.client_id, arguments.name
        )
        _print_json({"client_id": arguments.client_id, "api_url": binding.api_url})
        return
    if pool is None:
        raise CliError(
            "this stack takes the delivery API's tokens from an institution's IdP (ClientJwtIssuer), which "
            "rostersync cannot make clients in: register a client with the client-credentials grant and "
            "the rosters/read scope there, then give its id: rostersync client add --tenant T --name N "
            "--client-id ID"
        )
    credentials = add_machine_client(binding.services, pool, audience, arguments.tenant, arguments.name)
    # A contract for scripts: one JSON object; the secret is shown this once.
    _print_json(
        {
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "token_url": f"{binding.outputs['AdminSignInUrl']}/oauth2/token",
            "api_url": binding.api_url,
        }
    )


def cmd_client_list(arguments: argparse.Namespace) -> None:
    services = _binding(arguments).services
    require_tenant(services, arguments.tenant)
    clients = services.table.list_api_clients(arguments.tenant)
    output.emit(
        arguments,
        [client.model_dump(mode="json") for client in clients],
        ["CLIENT", "NAME"],
        lambda: [[client.client_id, client.name] for client in clients],
        empty="no machine clients (rostersync client add --tenant T --name N)",
    )


def cmd_client_remove(arguments: argparse.Namespace) -> None:
    binding = _binding(arguments)
    remove_machine_client(
        binding.services,
        _user_pool(binding),
        _delivery_audience(binding),
        arguments.tenant,
        arguments.client_id,
    )
    _print_json({"removed": arguments.client_id})


def cmd_client_sync_audience(arguments: argparse.Namespace) -> None:
    binding = _binding(arguments)
    _print_json({"audience": sync_audience(binding.services, _delivery_audience(binding))})


# -- sync --------------------------------------------------------------------------------------
def cmd_sync_run(arguments: argparse.Namespace) -> None:
    services = _binding(arguments).services
    tenant = require_tenant(services, arguments.tenant)
    if tenant.status is not TenantStatus.ACTIVE:
        reason = tenant.status_reason or "authorize it first"
        raise CliError(f"tenant {tenant.tenant_id} cannot sync: {tenant.status.value} ({reason})")
    try:
        request = request_sync(
            services,
            tenant.tenant_id,
            SyncTrigger.MANUAL,
            tuple(arguments.course),
            enforce_cooldown=not arguments.force,
        )
    except SyncCooldownError as error:
        raise CliError(
            f"{error.scope} was synced on request recently; the next is allowed at "
            f"{_local_time(error.retry_at)}; add --force to sync now"
        ) from error
    if not arguments.wait:
        _print_json({"tenant": tenant.tenant_id, "run_id": request.run_id, "status": "requested"})
        return
    deadline = time.monotonic() + arguments.timeout
    last = ""
    next_progress = 0.0
    while True:
        # The run's own row says when it ends; the summary reads every course result, so only now and then.
        run = services.table.get_run(tenant.tenant_id, request.run_id)
        finished = run is not None and run.finished
        summary = None
        if finished or time.monotonic() >= next_progress:
            summary = run_summary(services, tenant.tenant_id, request.run_id)
            next_progress = time.monotonic() + WAIT_PROGRESS_SECONDS
        if summary is not None:
            progress = (
                f"run {request.run_id}: {summary.run.status.value}, "
                f"{summary.courses_succeeded + summary.courses_failed}/{summary.run.courses_total} courses"
            )
            if progress != last:
                print(progress, file=sys.stderr)
                last = progress
            if summary.finished:
                _print_json(summary.model_dump(mode="json"))
                if summary.run.error_code or summary.courses_failed or summary.courses_held:
                    raise CliError(f"run {request.run_id} finished with failed or held courses")
                return
        if time.monotonic() > deadline:
            raise CliError(f"run {request.run_id} did not finish within {arguments.timeout} s")
        time.sleep(0.5)


def cmd_sync_status(arguments: argparse.Namespace) -> None:
    services = _binding(arguments).services
    require_tenant(services, arguments.tenant)
    run_ids = (
        [arguments.run]
        if arguments.run
        else [run.run_id for run in services.table.list_runs(arguments.tenant, 10)]
    )
    summaries = [run_summary(services, arguments.tenant, run_id) for run_id in run_ids]
    _print_json([summary.model_dump(mode="json") for summary in summaries if summary is not None])


def cmd_sync_history(arguments: argparse.Namespace) -> None:
    services = _binding(arguments).services
    require_tenant(services, arguments.tenant)
    runs = services.table.list_runs(arguments.tenant, arguments.limit)
    summaries = [
        summary
        for run in runs
        if (summary := run_summary(services, arguments.tenant, run.run_id)) is not None
    ]
    output.emit(
        arguments,
        [summary.model_dump(mode="json") for summary in summaries],
        [
            "RUN",
            "TRIGGER",
            "STATUS",
            "STARTED",
            "SECONDS",
            "OK/HELD/FAILED/ALL",
            "+ ~ -",
            "REQUESTS",
            "ERROR",
        ],
        lambda: [
            [
                summary.run.run_id,
                summary.run.trigger.value,
                summary.run.status.value,
                _local_time(summary.run.started_at),
                None if summary.run.duration_seconds is None else f"{summary.run.duration_seconds:.0f}",
                f"{summary.courses_succeeded}/{summary.courses_held}/{summary.courses_failed}"
                f"/{summary.run.courses_total}",
                f"{summary.changes.created} {summary.changes.updated} {summary.changes.dropped}",
                summary.canvas_requests,
                summary.run.error_message or summary.run.error_code,
            ]
            for summary in summaries
        ],
        empty=f"no sync runs yet for {arguments.tenant}",
    )


def cmd_sync_errors(arguments: argparse.Namespace) -> None:
    errors = sync_errors(_binding(arguments).services, arguments.tenant, arguments.run)
    if arguments.format == "csv":
        sys.stdout.write(sync_errors_csv(errors))
    else:
        _print_json([error.model_dump(mode="json") for error in errors])


def cmd_holds_list(arguments: argparse.Namespace) -> None:
    services = _binding(arguments).services
    if arguments.decided:
        holds = decided_holds(services, arguments.tenant)
    else:
        holds = pending_holds(services, arguments.tenant)
    output.emit(
        arguments,
        [
            {
                **hold.model_dump(mode="json", exclude={"puts", "deletes"}),
                "would_drop": [str(drop.enrollment_id) for drop in hold.drops]
                or [item.sk.removeprefix("ENROLLMENT#") for item in hold.puts],
            }
            for hold in holds
        ],
        ["COURSE", "STATUS", "DROPS", "OF ACTIVE", "HELD SINCE", "DECIDED BY", "WHEN"],
        lambda: [
            [
                h.course_id,
                h.status.value,
                h.student_drops,
                h.active_before,
                h.created_at,
                h.decided_by,
                h.decided_at,
            ]
            for h in holds
        ],
        empty="no decided holds" if arguments.decided else "no syncs waiting for approval",
    )


def cmd_holds_decide(arguments: argparse.Namespace) -> None:
    decide = approve_hold if arguments.command == "approve" else reject_hold
    operator = f"operator {getpass.getuser()} (CLI)"
    hold = decide(_binding(arguments).services, arguments.tenant, arguments.course, operator)
    verb = "applied" if arguments.command == "approve" else "rejected"
    print(f"course {hold.course_id}: {hold.student_drops} held drops {verb}")


def cmd_courses_import(arguments: argparse.Namespace) -> None:
    references = parse_course_list_csv(read_text_file(arguments.file))
    mode = SyncListMode(arguments.mode)
    services = _binding(arguments).services
    try:
        tenant = update_sync_list(services, arguments.tenant, mode, references, confirmed=arguments.yes)
    except ConfirmationNeededError as error:
        raise CliError(str(error).replace("confirm to proceed", "add --yes to proceed")) from error
    print(f"sync list of {tenant.tenant_id}: {len(tenant.settings.courses.sync_list)} courses ({mode.value})")


def cmd_courses_list(arguments: argparse.Namespace) -> None:
    tenant = require_tenant(_binding(arguments).services, arguments.tenant)
    print("\n".join(tenant.settings.courses.sync_list))


def cmd_events_replay(arguments: argparse.Namespace) -> None:
    payload = read_text_file(arguments.file)
    services = _binding(arguments).services
    tenant = require_tenant(services, arguments.tenant)
    parsed = parse_file(Path(arguments.file))
    if parsed.status != "ok" or parsed.event is None:
        raise CliError(f"{arguments.file}: {parsed.status}: {parsed.reason}")
    if not route_to_tenants([tenant], parsed.event):
        raise CliError(
            f"{arguments.file} is for another Canvas (root account {parsed.event.root_account_uuid})"
        )
    sent_at = datetime.now(UTC)
    services.queues.send_live_event(payload)
    # What the stack did with it, as recorded for the tenant (an event seen before is not applied again).
    deadline = time.monotonic() + arguments.wait_seconds
    while True:
        seen = [
            record
            for record in services.table.recent_live_events(tenant.tenant_id, 50)
            if record.dedupe_key == parsed.event.dedupe_key
        ]
        if seen:
            record = seen[0]
            again = " (seen before: not applied again)" if record.received_at < sent_at else ""
            print(json.dumps(record.model_dump(mode="json")))
            print(
                f"{parsed.event.event_name} for {tenant.tenant_id}: {record.outcome}{again}", file=sys.stderr
            )
            if record.outcome not in {"applied", "ignored"}:
                raise CliError(f"the event was not applied: {record.reason}")
            return
        if time.monotonic() > deadline:
            raise CliError(
                f"queued {parsed.event.event_name} for {tenant.tenant_id}, but no outcome within "
                f"{arguments.wait_seconds:.0f} s (see `rostersync events recent --tenant {tenant.tenant_id}`)"
            )
        time.sleep(0.5)


def cmd_events_recent(arguments: argparse.Namespace) -> None:
    services = _binding(arguments).services
    require_tenant(services, arguments.tenant)
    records = services.table.recent_live_events(arguments.tenant, arguments.limit)
    output.emit(
        arguments,
        [record.model_dump(mode="json") for record in records],
        ["RECEIVED", "EVENT", "ORIGIN", "OUTCOME", "REASON"],
        lambda: [[r.received_at, r.event_name, r.origin, r.outcome, r.reason] for r in records],
        empty="no live events in the last week",
    )


@dataclass(frozen=True)
class DeadLetterQueue:
    dead_letter_output: str
    source_output: str
    consumer: str  # the function whose log holds each message's error (SQS keeps none)


DEAD_LETTER_QUEUES = {
    "events": DeadLetterQueue("LiveEventsDeadLetterQueueUrl", "LiveEventsQueueUrl", "LiveEventsFunction"),
    "requests": DeadLetterQueue(
        "SyncRequestDeadLetterQueueUrl", "SyncRequestQueueUrl", "SyncPlannerFunction"
    ),
    "courses": DeadLetterQueue(
        "CourseSyncDeadLetterQueueUrl", "CourseSyncQueueUrl", "CourseSyncWorkerFunction"
    ),
    "grades": DeadLetterQueue("GradesDeadLetterQueueUrl", "GradesQueueUrl", "GradePassbackFunction"),
}
BODY_PREVIEW_CHARACTERS = 60


def _where_errors_are(binding: StackBinding, queue: DeadLetterQueue) -> str:
    place = (
        f"logs/{queue.consumer}.log in the local stack's state directory"
        if binding.control_url
        else f"the CloudWatch Logs group of the stack's {queue.consumer}"
    )
    return f"the error is not kept by SQS: see {place}"


def cmd_dlq_list(arguments: argparse.Namespace) -> None:
    binding = _binding(arguments)
    queues = DeadLetterQueues()
    listed: list[tuple[str, int, list[DeadLetter]]] = []
    for name in [arguments.queue] if arguments.queue else list(DEAD_LETTER_QUEUES):
        url = binding.outputs[DEAD_LETTER_QUEUES[name].dead_letter_output]
        letters = queues.peek(url)
        listed.append((name, max(queues.count(url), len(letters)), letters))
    if arguments.format == output.JSON:
        output.print_json(
            [
                {
                    "queue": name,
                    "messages": count,
                    "letters": [letter.model_dump(mode="json") for letter in letters],
                }
                for name, count, letters in listed
            ]
        )
        return
    print(output.table_text(["QUEUE", "MESSAGES"], [[name, count] for name, count, _ in listed]))
    rows = [
        [
            name, letter.message_id, letter.tenant_id, letter.run_id, letter.course_id, letter.batch_id,
            letter.receive_count, f"{letter.first_sent_at:%Y-%m-%d %H:%M:%S}Z",
            letter.body[:BODY_PREVIEW_CHARACTERS],
        ]
        for name, _, letters in listed
        for letter in letters
    ]  # fmt: skip
    if rows:
        headers = ["QUEUE", "MESSAGE", "TENANT", "RUN", "COURSE", "BATCH", "RECEIVES", "FIRST SENT", "BODY"]
        print(f"\n{output.table_text(headers, rows)}\n")
        for name, _, letters in listed:
            if letters:
                print(f"{name}: {_where_errors_are(binding, DEAD_LETTER_QUEUES[name])}")


def cmd_dlq_redrive(arguments: argparse.Namespace) -> None:
    binding = _binding(arguments)
    queue = DEAD_LETTER_QUEUES[arguments.queue]
    moved = DeadLetterQueues().redrive(
        binding.outputs[queue.dead_letter_output], binding.outputs[queue.source_output]
    )
    print(f"moved {moved} messages back to the {arguments.queue} queue")


def cmd_dlq_delete(arguments: argparse.Namespace) -> None:
    binding = _binding(arguments)
    url = binding.outputs[DEAD_LETTER_QUEUES[arguments.queue].dead_letter_output]
    if not DeadLetterQueues().delete(url, arguments.message_id):
        raise CliError(
            f"no message {arguments.message_id} in the {arguments.queue} dead-letter queue "
            f"(see `rostersync dlq list --queue {arguments.queue}`)"
        )
    print(f"deleted message {arguments.message_id} from the {arguments.queue} dead-letter queue")


def cmd_dlq_purge(arguments: argparse.Namespace) -> None:
    binding = _binding(arguments)
    url = binding.outputs[DEAD_LETTER_QUEUES[arguments.queue].dead_letter_output]
    queues = DeadLetterQueues()
    if not arguments.yes:
        raise CliError(
            f"this deletes all {queues.count(url)} messages of the {arguments.queue} dead-letter queue "
            "for good; add --yes"
        )
    try:
        purged = queues.purge(url)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "AWS.SimpleQueueService.PurgeQueueInProgress":
            raise
        raise CliError("SQS allows one purge of a queue a minute; try again in a minute") from error
    print(f"purged {purged} messages from the {arguments.queue} dead-letter queue")


# -- roster and scopes -------------------------------------------------------------------------
def cmd_roster_export(arguments: argparse.Namespace) -> None:
    print(json.dumps(export_roster(_binding(arguments).services, arguments.tenant), indent=2))


def cmd_canvas_accounts(arguments: argparse.Namespace) -> None:
    accounts = canvas_accounts(_binding(arguments).services, arguments.tenant)
    output.emit(
        arguments,
        [account.model_dump(mode="json") for account in accounts],
        ["ID", "NAME", "PARENT", "ROOT"],
        lambda: [
            [account.id, account.name, account.parent_account_id, account.root_account_id]
            for account in accounts
        ],
    )


def cmd_canvas_roles(arguments: argparse.Namespace) -> None:
    roles = canvas_course_roles(_binding(arguments).services, arguments.tenant, arguments.account_id)
    output.emit(
        arguments,
        [role.model_dump(mode="json") for role in roles],
        ["ROLE (name for --role)", "LABEL", "BASE TYPE", "STATE"],
        lambda: [[role.role, role.label, role.base_role_type, role.workflow_state] for role in roles],
    )


def cmd_canvas_terms(arguments: argparse.Namespace) -> None:
    seen = canvas_terms_seen(_binding(arguments).services, arguments.tenant, arguments.account_id)
    output.emit(
        arguments,
        [{**item.term.model_dump(mode="json"), "courses": item.courses} for item in seen],
        ["ID (for --term-id)", "NAME", "ENDS", "COURSES"],
        lambda: [[item.term.id, item.term.name, item.term.end_at, item.courses] for item in seen],
    )


def cmd_scopes(_: argparse.Namespace) -> None:
    print("\n".join(required_scopes()))


def _add_local_commands(groups: Any) -> None:
    local = groups.add_parser("local", help="the embedded local stack").add_subparsers(
        dest="command", required=True
    )
    up = local.add_parser("up", help="start moto, the Canvas simulator and the functions in the background")
    up.add_argument("--no-canvas-sim", action="store_true")
    up.add_argument("--seed", type=int, default=7)
    up.add_argument("--courses", type=int, default=60)
    up.add_argument(
        "--retry-delay-seconds", type=int, default=None, help="local only: retry failed messages sooner"
    )
    up.add_argument("--aws-port", type=int, default=0, help="moto's port (sam local's convention: 4566)")
    up.add_argument(
        "--canvas-port", type=int, default=0, help="the Canvas simulator's port (convention: 4567)"
    )
    up.add_argument(
        "--no-functions", action="store_true", help="AWS and Canvas only: the functions run in sam local"
    )
    up.add_argument(
        "--no-live-events",
        action="store_true",
        help="the simulator does not send its live events to the stack",
    )
    up.set_defaults(handler=cmd_local_up)
    local.add_parser(
        "down", help="stop the local stack (its data lives in memory: everything it held is gone)"
    ).set_defaults(handler=cmd_local_down)
    dev_key = local.add_parser("dev-key", help="make a developer key in the Canvas simulator (JSON)")
    dev_key.add_argument("--name", default="rostersync")
    dev_key.set_defaults(handler=cmd_local_dev_key)
    local.add_parser("status", help="endpoints and function counters").set_defaults(handler=cmd_local_status)
    token = groups.add_parser(
        "admin", help="admins' sign-in: invitations, memberships, operators"
    ).add_subparsers(dest="command", required=True)
    add_admin_commands(token, _binding)
    issue = token.add_parser(
        "token", help="development: a tenant admin's access token from the local stack's identity provider"
    )
    issue.add_argument("--tenant")
    issue.add_argument("--operator", action="store_true", help="an operator's token")
    issue.add_argument(
        "--console-url", action="store_true", help="print the settings page's URL, signed in with the token"
    )
    issue.add_argument(
        "--event",
        metavar="'METHOD /path'",
        help="print the API Gateway event of this request, with the token's claims",
    )
    issue.add_argument("--body", help="with --event: the request's JSON body")
    issue.set_defaults(handler=cmd_admin_token)
    fire = local.add_parser("fire", help="fire a schedule now (by default the full-sync tick)")
    fire.add_argument("schedule", nargs="?")
    fire.set_defaults(handler=cmd_local_fire)
    add_sam_local_commands(local, bind=lambda arguments: _binding(arguments).services)


def _add_tenant_commands(groups: Any) -> None:
    tenant = groups.add_parser("tenant", help="institutions").add_subparsers(dest="command", required=True)
    add = tenant.add_parser("add", help="add a tenant; prints its id")
    add.add_argument("--name", required=True)
    add.add_argument(
        "--canvas-url", help="leave out (with the key) for the tenant's admin to enter on the page"
    )
    add.add_argument("--client-id")
    add.add_argument("--client-secret", help="the key's secret, or - to read it from stdin")
    add.add_argument(
        "--allow-insecure-canvas", action="store_true", help="development: allow http and loopback"
    )
    add.add_argument(
        "--user-id-field",
        choices=[field.value for field in UserIdField],
        default=UserIdField.SIS_USER_ID.value,
    )
    add.set_defaults(handler=cmd_tenant_add)
    configure = tenant.add_parser("configure", help="change a tenant's sync settings; prints them")
    configure.add_argument("tenant")
    configure.add_argument("--course-id-field", choices=[field.value for field in CourseIdField])
    configure.add_argument("--user-id-field", choices=[field.value for field in UserIdField])
    configure.add_argument(
        "--role", action="append", default=[], metavar="NAME=ROLE",
        help="sync Canvas role NAME as student, instructor, course_admin or excluded (repeatable)",
    )  # fmt: skip
    configure.add_argument("--clear-role", action="append", default=[], metavar="NAME")
    configure.add_argument(
        "--account-id",
        type=_account_number,
        help="sync this sub-account's courses, by its number in Canvas (/accounts/N); 0: the whole root",
    )
    configure.add_argument("--term-id", type=int, action="append", help="only these terms (repeatable)")
    configure.add_argument("--all-terms", dest="term_id", action="store_const", const=[])
    configure.add_argument("--published-only", dest="published_only", action="store_true", default=None)
    configure.add_argument("--include-unpublished", dest="published_only", action="store_false")
    configure.add_argument(
        "--mass-drop-threshold", type=float, help="hold a course dropping more than this share"
    )
    configure.add_argument("--mass-drop-min-enrollments", type=int)
    configure.add_argument("--every-minutes", type=int, help="full sync every N minutes (at least 15)")
    configure.add_argument(
        "--daily-at", metavar="HH:MM", help="full sync once a day at this time (HH:MM, 24-hour) in --timezone"
    )
    configure.add_argument("--timezone", help="IANA time zone of --daily-at, e.g. America/Chicago")
    configure.set_defaults(handler=cmd_tenant_configure)
    tenant_list = tenant.add_parser("list", help="every tenant with its status")
    output.add_format_option(tenant_list)
    tenant_list.set_defaults(handler=cmd_tenant_list)
    show = tenant.add_parser("show")
    show.add_argument("tenant")
    show.set_defaults(handler=cmd_tenant_show)
    authorize = tenant.add_parser("authorize", help="print a one-time OAuth start URL")
    authorize.add_argument("tenant")
    authorize.set_defaults(handler=cmd_tenant_authorize)
    remove = tenant.add_parser("remove", help="delete a tenant, its stored rosters and its secret")
    remove.add_argument("tenant")
    remove.add_argument("--yes", action="store_true", help="confirm")
    remove.set_defaults(handler=cmd_tenant_remove)


def _add_sync_commands(groups: Any) -> None:
    sync = groups.add_parser("sync", help="sync runs").add_subparsers(dest="command", required=True)
    run = sync.add_parser("run", help="run a full sync through the real queues")
    run.add_argument("--tenant", required=True)
    run.add_argument("--course", type=int, action="append", default=[], help="only this course (repeatable)")
    run.add_argument("--force", action="store_true", help="operator: skip the sync-now cooldown")
    run.add_argument("--wait", action="store_true")
    run.add_argument("--timeout", type=float, default=600)
    run.set_defaults(handler=cmd_sync_run)
    status = sync.add_parser("status", help="recent runs and their results")
    status.add_argument("--tenant", required=True)
    status.add_argument("--run")
    status.set_defaults(handler=cmd_sync_status)
    history = sync.add_parser(
        "history",
        help="the tenant's runs, newest first: courses succeeded/held/failed, changes (created, updated, "
        "dropped), Canvas requests of the whole run",
    )
    history.add_argument("--tenant", required=True)
    history.add_argument("--limit", type=int, default=20, help="this many runs (default 20)")
    output.add_format_option(history)
    history.set_defaults(handler=cmd_sync_history)
    errors = sync.add_parser("errors", help="a run's sync errors (the latest run's by default)")
    errors.add_argument("--tenant", required=True)
    errors.add_argument("--run")
    errors.add_argument("--format", choices=["json", "csv"], default="json")
    errors.set_defaults(handler=cmd_sync_errors)

    holds = groups.add_parser("holds", help="syncs held for a mass drop").add_subparsers(
        dest="command", required=True
    )
    listing = holds.add_parser("list", help="courses waiting for approval, with their would-be drops")
    output.add_format_option(listing)
    listing.add_argument("--tenant", required=True)
    listing.add_argument(
        "--decided",
        action="store_true",
        help="decided holds instead: who decided what, and when",
    )
    listing.set_defaults(handler=cmd_holds_list)
    for decision in ("approve", "reject"):
        decide = holds.add_parser(decision, help=f"{decision} a course's held drops")
        decide.add_argument("--tenant", required=True)
        decide.add_argument("--course", type=int, required=True)
        decide.set_defaults(handler=cmd_holds_decide)


def _add_course_list_commands(groups: Any) -> None:
    courses = groups.add_parser("courses", help="the course sync list").add_subparsers(
        dest="command", required=True
    )
    importing = courses.add_parser(
        "import", help="change the sync list from a CSV (first column: course ids)"
    )
    importing.add_argument("--tenant", required=True)
    importing.add_argument("--mode", choices=[mode.value for mode in SyncListMode], required=True)
    importing.add_argument("--yes", action="store_true", help="confirm a replace")
    importing.add_argument("file")
    importing.set_defaults(handler=cmd_courses_import)
    listing = courses.add_parser("list", help="print the sync list")
    listing.add_argument("--tenant", required=True)
    listing.set_defaults(handler=cmd_courses_list)


def _add_dead_letter_commands(groups: Any) -> None:
    dlq = groups.add_parser("dlq", help="dead-letter queues").add_subparsers(dest="command", required=True)
    queue_names = list(DEAD_LETTER_QUEUES)
    listing = dlq.add_parser(
        "list",
        help="each dead-letter queue's count and messages (tenant, run, course or batch from the body, "
        "receive count); SQS keeps no error, so the output says which function's log holds it",
    )
    listing.add_argument("--queue", choices=queue_names, help="only this queue (default: every queue)")
    output.add_format_option(listing)
    listing.set_defaults(handler=cmd_dlq_list)
    redrive = dlq.add_parser("redrive", help="move a queue's failed messages back once the cause is fixed")
    redrive.add_argument("--queue", choices=queue_names, required=True)
    redrive.set_defaults(handler=cmd_dlq_redrive)
    delete = dlq.add_parser("delete", help="delete one poison message by its id (from `dlq list`)")
    delete.add_argument("message_id")
    delete.add_argument("--queue", choices=queue_names, required=True)
    delete.set_defaults(handler=cmd_dlq_delete)
    purge = dlq.add_parser("purge", help="delete every message of one dead-letter queue")
    purge.add_argument("--queue", choices=queue_names, required=True)
    purge.add_argument("--yes", action="store_true", help="confirm")
    purge.set_defaults(handler=cmd_dlq_purge)


def _add_canvas_commands(groups: Any) -> None:
    canvas = groups.add_parser(
        "canvas", help="look up a tenant's Canvas ids (accounts, roles, terms) for `tenant configure`"
    ).add_subparsers(dest="command", required=True)
    accounts = canvas.add_parser("accounts", help="the accounts the authorizing admin administers")
    roles = canvas.add_parser(
        "roles", help="the course roles of an account (default: the synced account, else the root)"
    )
    terms_text = (
        "the terms of an account's courses, with their course counts: Canvas's terms endpoint is not "
        "among rostersync's scopes, so terms are read off the course listing and a term without courses "
        "is not shown"
    )
    terms = canvas.add_parser("terms", help=terms_text, description=terms_text)
    handlers = ((accounts, cmd_canvas_accounts), (roles, cmd_canvas_roles), (terms, cmd_canvas_terms))
    for parser, handler in handlers:
        parser.add_argument("--tenant", required=True)
        if parser is not accounts:
            parser.add_argument("--account-id", type=_account_number, help="an account number (see accounts)")
        output.add_format_option(parser)
        parser.set_defaults(handler=handler)


def _add_client_commands(groups: Any) -> None:
    clients = groups.add_parser(
        "client", help="machine clients of the delivery API (/v1), OAuth client credentials"
    ).add_subparsers(dest="command", required=True)
    add = clients.add_parser(
        "add", help="a new client of a tenant: prints client_id, client_secret, token_url, api_url"
    )
    add.add_argument("--tenant", required=True)
    add.add_argument("--name", required=True, help="who uses it (the platform's name)")
    add.add_argument(
        "--client-id",
        help="with an institution's IdP (no stack user pool): register this existing client for the tenant",
    )
    add.set_defaults(handler=cmd_client_add)
    listing = clients.add_parser("list", help="a tenant's clients")
    listing.add_argument("--tenant", required=True)
    output.add_format_option(listing)
    listing.set_defaults(handler=cmd_client_list)
    remove = clients.add_parser("remove", help="unregister a client: its tokens stop working at once")
    remove.add_argument("client_id")
    remove.add_argument("--tenant", required=True)
    remove.set_defaults(handler=cmd_client_remove)
    clients.add_parser(
        "sync-audience",
        help="let every registered client through the /v1 authorizer again (after a `sam deploy` reset its "
        "audience); prints the audience",
    ).set_defaults(handler=cmd_client_sync_audience)


def _add_roster_commands(groups: Any) -> None:
    roster = groups.add_parser("roster", help="synced rosters").add_subparsers(dest="command", required=True)
    export = roster.add_parser("export", help="print a tenant's rosters")
    export.add_argument("--tenant", required=True)
    export.add_argument("--format", choices=["json"], default="json")
    export.set_defaults(handler=cmd_roster_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rostersync", description="Operate rostersync (Canvas roster sync)."
    )
    parser.add_argument("--state-dir", type=Path, default=default_state_dir(), help=argparse.SUPPRESS)
    parser.add_argument("--stack", help="a deployed CloudFormation stack (default: the running local stack)")
    groups = parser.add_subparsers(dest="group", required=True)

    _add_local_commands(groups)
    _add_tenant_commands(groups)
    _add_sync_commands(groups)
    _add_course_list_commands(groups)
    add_events_commands(groups, replay_handler=cmd_events_replay, recent_handler=cmd_events_recent)
    add_grades_commands(groups, bind=lambda arguments: _binding(arguments).services)
    _add_dead_letter_commands(groups)
    _add_roster_commands(groups)
    _add_client_commands(groups)
    _add_canvas_commands(groups)
    groups.add_parser("scopes", help="the developer-key scopes rostersync uses").set_defaults(
        handler=cmd_scopes
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        arguments.handler(arguments)
    except (
        CliError,
        TenantError,
        CanvasError,
        NoStackError,
        SyncCooldownError,
        AuthorizerNotFoundError,
        RuntimeError,
        TimeoutError,
    ) as error:
        print(f"rostersync: error: {error}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"rostersync: error: {describe_aws_error(error)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do, and keep Python's exit-time
        # flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
