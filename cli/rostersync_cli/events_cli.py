"""`rostersync events parse FILE... [--jwks FILE]`: read live events and print what rostersync makes of them.

Each FILE holds one event: Canvas JSON ({metadata, body}), a Caliper envelope, or a signed JWT as text.
One JSON object per line and file (a contract for scripts: docs/architecture.md):
    {"file", "status": "ok"|"ignored"|"invalid", "reason", "verified", "warnings", "event": {...} | null}
Ids in "event" are local integers, datetimes ISO 8601. Exit 0 unless a file is invalid (then 1).
Without --jwks a JWT is decoded WITHOUT verification and its reason says so ("verified": false).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from rostersync.events.models import ParsedEvent
from rostersync.events.parse import parse_event
from rostersync.events.signing import looks_like_jwt, parse_signed_event, parse_unverified_signed_event
from rostersync_cli.output import add_format_option

__all__ = ["EventsCommandError", "add_events_commands", "main_events", "parse_file", "run_parse"]


class EventsCommandError(RuntimeError):
    """The command cannot run as asked (e.g. an unusable --jwks file) or some files were invalid."""


def add_events_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    replay_handler: Callable[[argparse.Namespace], None],
    recent_handler: Callable[[argparse.Namespace], None],
) -> None:
    """Add the `events` group (`parse`; `replay` and `recent` through the stack) to the main CLI."""
    events = subparsers.add_parser("events", help="Canvas Live Events").add_subparsers(
        dest="command", required=True
    )
    _configure_parse(events.add_parser("parse", help="parse live-event files; one JSON line per file"))
    replay = events.add_parser("replay", help="push a live-event file through the stack's live-events queue")
    replay.add_argument(
        "file", type=Path, metavar="FILE", help="Canvas/Caliper JSON or a JWT, as Canvas sends it"
    )
    replay.add_argument("--tenant", required=True, help="the tenant the event must route to")
    replay.add_argument(
        "--wait-seconds", type=float, default=30.0, help="how long to wait for the event's outcome"
    )
    replay.set_defaults(handler=replay_handler)
    recent = events.add_parser("recent", help="a tenant's last live events and what became of each")
    recent.add_argument("--tenant", required=True)
    recent.add_argument("--limit", type=int, default=20)
    add_format_option(recent)
    recent.set_defaults(handler=recent_handler)


def _configure_parse(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="Canvas/Caliper JSON or a JWT")
    parser.add_argument(
        "--jwks", type=Path, metavar="FILE", help="verify signed (JWT) events against this JWKS (JSON)"
    )
    parser.set_defaults(handler=cmd_events_parse)


def cmd_events_parse(arguments: argparse.Namespace) -> None:
    """Handler for the main CLI: its error path turns EventsCommandError (a RuntimeError) into exit 1."""
    invalid = _run(arguments.files, arguments.jwks, sys.stdout)
    if invalid:
        raise EventsCommandError(f"{invalid} of {len(arguments.files)} file(s) invalid")


def load_jwks(path: str | Path) -> dict[str, Any]:
    try:
        jwks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise EventsCommandError(f"cannot read the JWKS {path}: {error}") from error
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise EventsCommandError(f'the JWKS {path} is not a JSON object with a "keys" list')
    return jwks


def parse_file(
    path: str | Path, jwks: Mapping[str, Any] | None = None, *, now: datetime | None = None
) -> ParsedEvent:
    """Parse one file: a JWT is verified against `jwks` when given, else only decoded (verified=False)."""
    try:
        text = Path(path).read_bytes().decode("utf-8").strip()
    except OSError as error:
        return ParsedEvent(status="invalid", reason=f"cannot read the file: {error.strerror or error}")
    except UnicodeDecodeError as error:
        return ParsedEvent(status="invalid", reason=f"not UTF-8 text: {error}")
    if looks_like_jwt(text):
        if jwks is None:
            return parse_unverified_signed_event(text)
        return parse_signed_event(text, jwks, now=now)
    return parse_event(text)


def output_line(path: str | Path, parsed: ParsedEvent) -> dict[str, Any]:
    return {
        "file": str(path),
        "status": parsed.status,
        "reason": parsed.reason,
        "verified": parsed.verified,
        "warnings": list(parsed.warnings),
        "event": parsed.event.model_dump(mode="json") if parsed.event else None,
    }


def _run(
    paths: Sequence[str | Path], jwks_path: str | Path | None, out: TextIO, now: datetime | None = None
) -> int:
    jwks = load_jwks(jwks_path) if jwks_path is not None else None
    invalid = 0
    for path in paths:
        parsed = parse_file(path, jwks, now=now)
        invalid += parsed.status == "invalid"
        out.write(json.dumps(output_line(path, parsed), ensure_ascii=False) + "\n")
    return invalid


def run_parse(
    paths: Sequence[str | Path], jwks_path: str | Path | None, out: TextIO, *, now: datetime | None = None
) -> int:
    """Print one JSON line per file to `out`; 0 when no file is invalid, else 1.
    Raises EventsCommandError when the --jwks file is unusable."""
    return 1 if _run(paths, jwks_path, out, now) else 0


def main_events(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """`rostersync events` on its own, e.g. main_events(["parse", "event.json", "--jwks", "jwks.json"])."""
    parser = argparse.ArgumentParser(prog="rostersync events", description="Canvas Live Events.")
    commands = parser.add_subparsers(dest="command", required=True)
    _configure_parse(commands.add_parser("parse", help="parse live-event files; one JSON line per file"))
    arguments = parser.parse_args(argv)
    try:
        return run_parse(arguments.files, arguments.jwks, out or sys.stdout)
    except EventsCommandError as error:
        print(f"rostersync events: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main_events())
