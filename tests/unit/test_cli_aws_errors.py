"""`rostersync --stack NAME ...` when AWS says no: one line naming the cause, exit 1, no traceback; and a
deployed stack's CLI never imports the local stack (moto, samtranslator, werkzeug, the runner).

AWS is a moto server in its own process with IAM checks on (after the first few unauthenticated calls,
which create the test's users), so the refusals are AWS's own answers to real signed requests."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from rostersync_local.runner import wait_until_ready

# CreateUser, PutUserPolicy, CreateAccessKey for the reader; CreateUser, CreateAccessKey for the other.
UNAUTHENTICATED_SETUP_CALLS = 5
READ_STACKS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "cloudformation:DescribeStacks", "Resource": "*"}],
}
LOCAL_ONLY_MODULES = ("moto", "samtranslator", "werkzeug", "rostersync_local.runner")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def iam_checked_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, str]]]:
    """A moto server checking IAM, and the keys of a user who may read stacks and of one who may not."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(UNAUTHENTICATED_SETUP_CALLS)},
        stdout=log,
        stderr=log,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{endpoint}/moto-api/")
        iam = boto3.client(
            "iam", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="setup", aws_secret_access_key="setup",
        )  # fmt: skip
        iam.create_user(UserName="reader")
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(READ_STACKS))
        reader = iam.create_access_key(UserName="reader")["AccessKey"]
        iam.create_user(UserName="stranger")
        stranger = iam.create_access_key(UserName="stranger")["AccessKey"]
        yield {
            name: {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            }
            for name, key in (("reader", reader), ("stranger", stranger))
        } | {"nobody": {"AWS_ENDPOINT_URL": endpoint}}
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def _cli(tmp_path: Path, aws: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a clean AWS environment: no profile, no credentials file, no instance metadata."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")} | {
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ROSTERSYNC_STATE_DIR": str(tmp_path / "no-local-stack"),
        **aws,
    }
    # The CLI's own entry point, then the modules it loaded: none of the local stack's.
    program = (
        "import sys\n"
        "from rostersync_cli.main import main\n"
        "code = main(sys.argv[1:])\n"
        f"loaded = sorted(m for m in sys.modules if m.startswith({LOCAL_ONLY_MODULES!r}))\n"
        "print('LOADED', loaded)\n"
        "sys.exit(code)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", program, *arguments],
        capture_output=True, text=True, env=environment, check=False, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("nobody", "rostersync: error: no AWS credentials found"),
        ("reader", "rostersync: error: no stack named nope in us-east-1"),
        ("stranger", "rostersync: error: AWS refused DescribeStacks: access denied"),
    ],
)
def test_aws_saying_no_is_one_line_and_exit_1(
    iam_checked_aws: dict[str, dict[str, str]], tmp_path: Path, who: str, expected: str
) -> None:
    completed = _cli(tmp_path, iam_checked_aws[who], "--stack", "nope", "tenant", "list")
    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1 and completed.stderr.startswith(expected), completed.stderr
    assert "Traceback" not in completed.stderr
    assert "LOADED []" in completed.stdout, completed.stdout


def test_unreachable_aws_is_one_line(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    aws = {"AWS_ENDPOINT_URL": closed, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
           "AWS_MAX_ATTEMPTS": "1"}  # fmt: skip
    completed = _cli(tmp_path, aws, "--stack", "nope", "tenant", "list")
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"rostersync: error: cannot reach AWS at {closed}"), completed.stderr
    assert completed.stderr.count("\n") == 1
