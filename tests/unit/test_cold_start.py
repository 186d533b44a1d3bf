"""What a function's cold start imports and builds: only what its handler's paths need.

The handler modules are imported in one fresh interpreter, with the environment template.yaml gives them (no
AWS request is made at import), which reports the modules and AWS clients their imports brought in.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "y",
    "ROSTER_TABLE_NAME": "table",
    "COURSE_SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/course-syncs",
    "SYNC_REQUEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/sync-requests",
    "TENANT_SECRET_PREFIX": "rostersync/test/tenants",
    "POWERTOOLS_METRICS_NAMESPACE": "rostersync",
}
# Each function's module as Lambda loads it (its own directory first on the path), under its own name.
REPORT = """
import importlib.util, json, sys
from pathlib import Path
clients, traced = {}, {}
for directory in sys.argv[1:]:
    sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(Path(directory).name, Path(directory) / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.handler)
    made = {
        "sqs": "_client" in vars(module.services.queues),
        "secretsmanager": "_client" in vars(module.services.secrets),
        "grades": "grades" in vars(module.services) or "grade_queue" in vars(module.services),
    }
    clients[Path(directory).name] = sorted(name for name, yes in made.items() if yes)
    wrapper, code_files = module.handler, []
    while wrapper is not None:  # the decorators' own code, outermost first
        code_files.append(wrapper.__code__.co_filename)
        wrapper = getattr(wrapper, "__wrapped__", None)
    traced[Path(directory).name] = any(name.endswith("tracer.py") for name in code_files)
print(json.dumps({"modules": sorted(sys.modules), "clients": clients, "traced": traced}))
"""


def cold_start(*functions: str, environment: dict[str, str] | None = None) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", REPORT, *(str(ROOT / "functions" / name) for name in functions)],
        env={"PATH": os.environ["PATH"], **ENVIRONMENT, **(environment or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return report


def test_the_worker_and_scheduler_imports_build_only_what_their_paths_use() -> None:
    report = cold_start("course_sync_worker", "sync_scheduler")
    # A client is made at its first use, so an import makes none its function never uses: the worker
    # reads Canvas tokens and sends no message, the scheduler sends sync requests and reads no secret.
    assert report["clients"] == {"course_sync_worker": [], "sync_scheduler": []}
    # Idempotency belongs to the live events consumer, grades to their own functions.
    assert "aws_lambda_powertools.utilities.idempotency" not in report["modules"]
    assert "rostersync.store.grades" not in report["modules"]


def test_functions_that_never_call_canvas_load_no_http_client_nor_tracing_sdk() -> None:
    # Run in Lambda (LAMBDA_TASK_ROOT) with tracing off: Tracer would import the X-Ray SDK even to disable
    # it, and the SDK builds two X-Ray clients at import. The scheduler only queues requests, the delivery
    # API and the feed publisher read the table, the audience repair the table and API Gateway: requests
    # is for the functions that speak HTTP.
    report = cold_start(
        "sync_scheduler",
        "delivery_api",
        "feed_publisher",
        "delivery_audience",
        environment={
            "LAMBDA_TASK_ROOT": str(ROOT),
            "POWERTOOLS_TRACE_DISABLED": "true",
            "DELIVERY_API_ID": "api1",
            "CLIENT_JWT_AUDIENCE": "rostersync-api",
        },
    )
    loaded = set(report["modules"])
    assert "requests" not in loaded
    assert "aws_xray_sdk" not in loaded
    assert "pydantic_settings" not in loaded


def test_a_function_that_traces_wraps_its_handler_in_the_tracer() -> None:
    # Tracing on (as template.yaml's Tracing: Active deploys it): the handler runs inside Tracer's segment.
    report = cold_start(
        "sync_scheduler",
        environment={"LAMBDA_TASK_ROOT": str(ROOT), "POWERTOOLS_TRACE_DISABLED": "false"},
    )
    assert "aws_xray_sdk.core" in report["modules"]
    assert report["traced"] == {"sync_scheduler": True}


# The botocore sessions in which each function's import makes a DynamoDB client: each session loads the
# service's model (a few hundred kB of JSON) for itself; the clients of one session share it.
DYNAMODB_SESSIONS = """
import importlib.util, json, sys
from pathlib import Path
import botocore.session
sessions, create_client = set(), botocore.session.Session.create_client
def counted(self, service_name, *args, **kwargs):
    if service_name == "dynamodb":
        sessions.add(id(self))
    return create_client(self, service_name, *args, **kwargs)
botocore.session.Session.create_client = counted
by_function = {}
for directory in sys.argv[1:]:
    sessions.clear()
    sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(Path(directory).name, Path(directory) / "app.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    sys.path.remove(directory)
    by_function[Path(directory).name] = len(sessions)
print(json.dumps(by_function))
"""


def test_idempotency_loads_dynamodb_in_the_functions_own_session() -> None:
    # Powertools' persistence layer would otherwise build its client in a new boto3 session, loading
    # DynamoDB's model a second time at the cold start.
    functions = ("live_events", "admin_api")
    completed = subprocess.run(
        [sys.executable, "-c", DYNAMODB_SESSIONS, *(str(ROOT / "functions" / name) for name in functions)],
        env={"PATH": os.environ["PATH"], **ENVIRONMENT},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout.splitlines()[-1]) == {"live_events": 1, "admin_api": 1}
