"""`rostersync ... | head`: the CLI stops quietly when its reader goes away."""

import subprocess
import sys

# A command whose output is far larger than a pipe's buffer, so the write meets the closed pipe.
LOUD = (
    "import sys; from rostersync_cli import main as cli; "
    "cli.cmd_scopes = lambda arguments: print('scope\\n' * 2_000_000); "
    "sys.exit(cli.main(['scopes']))"
)


def test_a_reader_that_stops_early_ends_the_cli_quietly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", LOUD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == "scope\n"
    process.stdout.close()  # what `head -1` does after its line
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141
    assert stderr == ""
