"""`rostersync events parse`: one JSON line per file, exit codes, JWT handling with and without --jwks."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from rostersync_cli.events_cli import (
    EventsCommandError,
    add_events_commands,
    cmd_events_parse,
    main_events,
    run_parse,
)
from tests.unit.test_live_events_signing import NOW, Signer, event_claims

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "live_events"
ENROLLMENT = FIXTURES / "canvas/enrollment_created.json"
CALIPER_ENROLLMENT = FIXTURES / "caliper/enrollment_created.json"
IGNORED = FIXTURES / "canvas/course_completed.json"


def lines(out: StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture
def jwks_file(tmp_path: Path, signer: Signer) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(signer.jwks()), encoding="utf-8")
    return path


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_ok_and_ignored_files_print_one_line_each_and_exit_0() -> None:
    out = StringIO()
    assert run_parse([ENROLLMENT, CALIPER_ENROLLMENT, IGNORED], None, out) == 0
    first, second, third = lines(out)
    assert set(first) == {"file", "status", "reason", "verified", "warnings", "event"}
    assert (first["file"], first["status"], first["reason"], first["verified"]) == (
        str(ENROLLMENT),
        "ok",
        None,
        None,
    )
    event = first["event"]
    assert (event["enrollment_id"], event["course_id"], event["section_id"], event["user_id"]) == (
        46825,
        565,
        4811,
        20064,
    )
    assert isinstance(event["root_account_id"], int) and event["object_type"] == "enrollment"
    assert datetime.fromisoformat(event["event_time"]) == datetime.fromisoformat("2018-10-09T21:07:33+00:00")
    assert second["event"]["format"] == "caliper"
    assert {key: second["event"][key] for key in ("enrollment_id", "course_id", "section_id", "user_id")} == {
        key: event[key] for key in ("enrollment_id", "course_id", "section_id", "user_id")
    }
    assert third["status"] == "ignored" and third["reason"].startswith(
        "not roster-relevant: course_completed"
    )


def test_an_invalid_file_makes_the_exit_code_1(tmp_path: Path) -> None:
    broken = write(
        tmp_path, "broken.json", '{"metadata": {"event_time": "2019-11-01T00:00:00Z"}, "body": {}}'
    )
    out = StringIO()
    assert run_parse([ENROLLMENT, broken], None, out) == 1
    ok, invalid = lines(out)
    assert ok["status"] == "ok"
    assert (invalid["status"], invalid["reason"], invalid["event"]) == (
        "invalid",
        "metadata.event_name is missing",
        None,
    )


def test_a_missing_file_is_an_invalid_line_not_a_crash(tmp_path: Path) -> None:
    out = StringIO()
    assert run_parse([tmp_path / "nope.json"], None, out) == 1
    (line,) = lines(out)
    assert line["status"] == "invalid" and line["reason"].startswith("cannot read the file")


def test_a_jwt_without_jwks_is_decoded_unverified_and_says_so(tmp_path: Path, signer: Signer) -> None:
    token = write(tmp_path, "event.jwt", signer.token(event_claims()) + "\n")
    out = StringIO()
    assert run_parse([token], None, out) == 0
    (line,) = lines(out)
    assert (line["status"], line["verified"]) == ("ok", False)
    assert '"verified": false' in line["reason"]
    assert line["event"]["enrollment_id"] == 46825


def test_a_jwt_with_jwks_is_verified(tmp_path: Path, signer: Signer, jwks_file: Path) -> None:
    token = write(tmp_path, "event.jwt", signer.token(event_claims()))
    out = StringIO()
    assert run_parse([token], jwks_file, out, now=NOW) == 0
    (line,) = lines(out)
    assert (line["status"], line["verified"], line["reason"]) == ("ok", True, None)


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda signer: signer.token(event_claims(), kid="unknown"), "signature refused: unknown_kid"),
        (lambda signer: Signer().token(event_claims()), "signature refused: bad_signature"),
        (
            lambda signer: signer.token(event_claims(lifetime=timedelta(hours=-1), iat=0)),
            "signature refused: expired",
        ),
    ],
)
def test_a_refused_jwt_is_invalid_with_its_reason(
    tmp_path: Path, signer: Signer, jwks_file: Path, make_token: Any, reason: str
) -> None:
    token = write(tmp_path, "event.jwt", make_token(signer))
    out = StringIO()
    assert run_parse([token, ENROLLMENT], jwks_file, out, now=NOW) == 1
    refused, plain = lines(out)
    assert (refused["status"], refused["verified"], refused["event"]) == ("invalid", False, None)
    assert refused["reason"].startswith(reason)
    assert plain["status"] == "ok" and plain["verified"] is None  # plain JSON needs no signature


def test_an_unusable_jwks_file_stops_the_command(tmp_path: Path) -> None:
    with pytest.raises(EventsCommandError, match="JWKS"):
        run_parse([ENROLLMENT], write(tmp_path, "jwks.json", '{"no": "keys"}'), StringIO())
    with pytest.raises(EventsCommandError, match="cannot read the JWKS"):
        run_parse([ENROLLMENT], tmp_path / "missing.json", StringIO())


def test_main_events_runs_the_parse_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = StringIO()
    assert main_events(["parse", str(ENROLLMENT), str(IGNORED)], out=out) == 0
    assert [line["status"] for line in lines(out)] == ["ok", "ignored"]
    assert (
        main_events(["parse", str(ENROLLMENT), "--jwks", str(tmp_path / "missing.json")], out=StringIO()) == 2
    )
    assert "cannot read the JWKS" in capsys.readouterr().err


def test_add_events_commands_wires_the_group_into_a_parent_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="rostersync")
    replays: list[argparse.Namespace] = []
    recents: list[argparse.Namespace] = []
    add_events_commands(
        parser.add_subparsers(dest="group", required=True),
        replay_handler=replays.append,
        recent_handler=recents.append,
    )
    replay = parser.parse_args(["events", "replay", "e.json", "--tenant", "t1"])
    replay.handler(replay)
    assert [(r.file, r.tenant, r.wait_seconds) for r in replays] == [(Path("e.json"), "t1", 30.0)]
    recent = parser.parse_args(["events", "recent", "--tenant", "t1", "--limit", "5"])
    recent.handler(recent)
    assert [(r.tenant, r.limit) for r in recents] == [("t1", 5)]
    arguments = parser.parse_args(["events", "parse", "a.json", "b.jwt", "--jwks", "k.json"])
    assert arguments.handler is cmd_events_parse
    assert (arguments.files, arguments.jwks) == ([Path("a.json"), Path("b.jwt")], Path("k.json"))

    arguments = parser.parse_args(["events", "parse", str(ENROLLMENT)])
    arguments.handler(arguments)
    assert json.loads(capsys.readouterr().out)["status"] == "ok"

    broken = write(tmp_path, "broken.json", "not json")
    arguments = parser.parse_args(["events", "parse", str(ENROLLMENT), str(broken)])
    with pytest.raises(RuntimeError, match="1 of 2 file"):  # the main CLI turns RuntimeError into exit 1
        arguments.handler(arguments)
    assert [json.loads(line)["status"] for line in capsys.readouterr().out.splitlines()] == ["ok", "invalid"]


def test_files_without_arguments_are_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        main_events(["parse"])
