"""How long each function's handler takes to import, from an artifact laid out as `sam build` lays it out.

A measurement, not a test. The layer is the locked requirements (pip install --target, hashes checked)
plus the rostersync package, as `sam build` builds layers/common; each function's directory is its code.
Each handler is imported in a fresh interpreter without site-packages (-S: only the artifact on the path),
with the environment template.yaml gives the functions and Lambda's own LAMBDA_TASK_ROOT (no AWS request
is made at import), ``--runs`` times; it prints the median and least wall and CPU seconds per handler.
Tracing is off (POWERTOOLS_TRACE_DISABLED) unless ``--traced``: a traced function imports the X-Ray SDK.

Run: .venv/bin/python -m rostersync_local.coldstart [--runs 7] [--traced] [FUNCTION ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from rostersync_local.control import REPO_ROOT

ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "y",
    "AWS_LAMBDA_FUNCTION_NAME": "rostersync-function",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "ROSTER_TABLE_NAME": "table",
    "COURSE_SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/course-syncs",
    "SYNC_REQUEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/sync-requests",
    "LIVE_EVENTS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/live-events",
    "GRADES_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/grades",
    "TENANT_SECRET_PREFIX": "rostersync/coldstart/tenants",
    "DELIVERY_API_ID": "coldstart",
    "CLIENT_JWT_AUDIENCE": "coldstart",
    "POWERTOOLS_SERVICE_NAME": "rostersync",
    "POWERTOOLS_METRICS_NAMESPACE": "rostersync",
}
IMPORT = (
    "import time, sys; wall, cpu = time.perf_counter(), time.process_time(); import app; "
    "print(time.perf_counter() - wall, time.process_time() - cpu, file=sys.stderr)"
)


def build_layer(python: str, out: Path) -> Path:
    """The layer's python/ directory: the locked packages once (kept between runs), our package fresh."""
    layer = out / "python"
    if not (layer / "boto3").is_dir():
        requirements = REPO_ROOT / "layers" / "common" / "requirements.txt"
        subprocess.run(  # noqa: S603 - pip, with the repository's lock
            [python, "-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes", "--target",
             str(layer), "-r", str(requirements)],
            check=True,
        )  # fmt: skip
    shutil.rmtree(layer / "rostersync", ignore_errors=True)
    shutil.copytree(REPO_ROOT / "layers" / "common" / "rostersync", layer / "rostersync")
    # Compiled once, as a warm cache would hold them: the figures are imports, not compilation.
    subprocess.run([python, "-m", "compileall", "-q", str(layer / "rostersync")], check=True)  # noqa: S603
    return layer


def measure(
    python: str, layer: Path, function: Path, runs: int, traced: bool
) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    environment = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(layer),
        "LAMBDA_TASK_ROOT": str(function),
        "POWERTOOLS_TRACE_DISABLED": str(not traced).lower(),
        **ENVIRONMENT,
    }
    for _ in range(runs):
        completed = subprocess.run(  # noqa: S603 - our own handler module
            [python, "-S", "-c", IMPORT],
            cwd=function,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{function.name}: {completed.stderr[-1500:]}")
        wall, cpu = completed.stderr.strip().splitlines()[-1].split()
        walls.append(float(wall))
        cpus.append(float(cpu))
    return walls, cpus


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("functions", nargs="*", help="function directories (default: every one)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--traced", action="store_true", help="with X-Ray tracing on (Tracing: Active)")
    parser.add_argument("--python", default=sys.executable, help="a Python 3.13 (the Lambda runtime's)")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / ".rostersync" / "coldstart")
    arguments = parser.parse_args()
    layer = build_layer(arguments.python, arguments.out_dir)
    functions = sorted(path for path in (REPO_ROOT / "functions").iterdir() if (path / "app.py").is_file())
    for function in functions:
        if arguments.functions and function.name not in arguments.functions:
            continue
        walls, cpus = measure(arguments.python, layer, function, arguments.runs, arguments.traced)
        print(
            f"{function.name:20s} wall median {statistics.median(walls):.3f} s, least {min(walls):.3f} s;"
            f" CPU median {statistics.median(cpus):.3f} s, least {min(cpus):.3f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
