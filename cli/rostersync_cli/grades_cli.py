"""`rostersync grades push|status|retry|verify|live-results`: grade passback from the operator CLI."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rostersync.canvas.errors import CanvasError, CanvasNotFoundError
from rostersync.grades.batches import (
    UnknownBatchError,
    batch_status,
    retry_failed,
    submit_batch,
)
from rostersync.grades.csvfile import GradeCsvError, parse_grades_csv
from rostersync.grades.live_results import live_assessment_results
from rostersync.grades.verify import verify_batch
from rostersync.models import GradeAssignment, GradeBatch
from rostersync.services import Services
from rostersync.tenants import TenantError, require_tenant
from rostersync_cli.files import read_text_file
from rostersync_cli.output import add_format_option, emit

Bind = Callable[[argparse.Namespace], Services]


class GradesCliError(RuntimeError):
    """The grades command cannot run as asked (bad CSV, unknown tenant or batch)."""


def add_grades_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser], bind: Bind) -> None:
    grades = groups.add_parser("grades", help="grade passback to Canvas").add_subparsers(
        dest="command", required=True
    )
    push = grades.add_parser("push", help="send a CSV of grades to a Canvas assignment; prints the batch id")
    push.add_argument("--tenant", required=True)
    push.add_argument("--course", required=True, type=int, help="the Canvas course id")
    push.add_argument("--assignment", required=True, help="the assignment's name (created if needed)")
    push.add_argument("--external-id", help="our id of the assignment (default: its name)")
    push.add_argument("--points", type=float, default=100.0, help="points possible (default 100)")
    push.add_argument("--grading-type", default="points")
    push.add_argument(
        "--csv",
        required=True,
        type=Path,
        help="columns: student (matched by the tenant's user identifier field, e.g. sis_user_id or email), "
        "score, grade, excused, comment",
    )
    push.set_defaults(handler=lambda arguments: _push(arguments, bind))

    status = grades.add_parser("status", help="each grade's state and the batch's notes, as JSON")
    status.add_argument("batch")
    status.add_argument("--tenant", required=True)
    status.set_defaults(handler=lambda arguments: _status(arguments, bind))

    listing = grades.add_parser("list", help="the tenant's latest grade batches (find a lost batch id)")
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--limit", type=int, default=50)
    add_format_option(listing)
    listing.set_defaults(handler=lambda arguments: _list(arguments, bind))

    retry = grades.add_parser("retry", help="queue a batch's failed grades again")
    retry.add_argument("batch")
    retry.add_argument("--tenant", required=True)
    retry.set_defaults(handler=lambda arguments: _retry(arguments, bind))

    verify = grades.add_parser(
        "verify", help="read the batch's grades back from Canvas; exit 1 unless every grade is there as sent"
    )
    verify.add_argument("batch")
    verify.add_argument("--tenant", required=True)
    verify.set_defaults(handler=lambda arguments: _verify(arguments, bind))

    live = grades.add_parser(
        "live-results", help="read a live assessment's pass/fail results from Canvas, as JSON"
    )
    live.add_argument("--tenant", required=True)
    live.add_argument("--course", required=True, type=int, help="the Canvas course id")
    live.add_argument("--assessment", required=True, type=int, help="the Canvas live assessment id")
    live.add_argument("--user", type=int, help="only this Canvas user's results")
    live.set_defaults(handler=lambda arguments: _live_results(arguments, bind))


def _push(arguments: argparse.Namespace, bind: Bind) -> None:
    try:
        entries = parse_grades_csv(read_text_file(arguments.csv))
        batch = GradeBatch(
            tenant_id=arguments.tenant,
            course_id=arguments.course,
            assignment=GradeAssignment(
                external_id=arguments.external_id or arguments.assignment,
                name=arguments.assignment,
                points_possible=arguments.points,
                grading_type=arguments.grading_type,
            ),
            grades=entries,
        )
        print(submit_batch(bind(arguments), arguments.tenant, batch))
    except ValidationError as error:  # e.g. --points nan
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        raise GradesCliError(f"invalid grade batch: {problems}") from error
    except (GradeCsvError, TenantError) as error:
        raise GradesCliError(str(error)) from error


def _status(arguments: argparse.Namespace, bind: Bind) -> None:
    print(json.dumps(_call(batch_status, arguments, bind), indent=2))


def _list(arguments: argparse.Namespace, bind: Bind) -> None:
    services = bind(arguments)
    require_tenant(services, arguments.tenant)
    batches = services.grades.list_batches(arguments.tenant, arguments.limit)
    emit(
        arguments,
        [batch.model_dump(mode="json", exclude={"notes", "canvas_assignment_id"}) for batch in batches],
        ["batch", "created", "course", "assignment", "grades"],
        lambda: [
            [b.batch_id, b.created_at.isoformat(timespec="seconds"), b.course_id, b.assignment.name, b.size]
            for b in batches
        ],
        empty="no grade batches",
    )


def _retry(arguments: argparse.Namespace, bind: Bind) -> None:
    outcome = _call(retry_failed, arguments, bind)
    print(json.dumps(outcome.as_dict(arguments.batch)))
    if outcome.left_failed:
        reasons = ", ".join(f"{count} {reason}" for reason, count in outcome.left_failed.items())
        raise GradesCliError(
            f"not queued again, a resend cannot cure them ({reasons}): correct and push them"
        )


def _verify(arguments: argparse.Namespace, bind: Bind) -> None:
    try:
        result = _call(verify_batch, arguments, bind)
    except CanvasError as error:
        raise GradesCliError(f"reading Canvas failed: {error}") from error
    print(result.model_dump_json(indent=2))
    if not result.all_match:
        counts = result.counts
        raise GradesCliError(
            f"{counts['differs']} grades differ and {counts['missing']} are missing in Canvas; "
            f"{counts['not_sent']} were never sent (see `grades status`)"
        )


def _live_results(arguments: argparse.Namespace, bind: Bind) -> None:
    try:
        results = live_assessment_results(
            bind(arguments), arguments.tenant, arguments.course, arguments.assessment, arguments.user
        )
    except CanvasNotFoundError as error:
        raise GradesCliError(
            f"no live assessment {arguments.assessment} in course {arguments.course}: {error}"
        ) from error
    except CanvasError as error:
        raise GradesCliError(f"reading Canvas failed: {error}") from error
    found = [result.model_dump(mode="json") for result in results]
    print(
        json.dumps(
            {"course_id": arguments.course, "assessment_id": arguments.assessment, "results": found},
            indent=2,
        )
    )


def _call(function: Callable[..., Any], arguments: argparse.Namespace, bind: Bind) -> Any:
    try:
        return function(bind(arguments), arguments.tenant, arguments.batch)
    except UnknownBatchError as error:
        raise GradesCliError(f"no grade batch {error} for tenant {arguments.tenant}") from error
