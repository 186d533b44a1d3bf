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
clients = {}
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
print(json.dumps({"modules": sorted(sys.modules), "clients": clients}))
"""


def cold_start(*functions: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", REPORT, *(str(ROOT / "functions" / name) for name in functions)],
        env={"PATH": os.environ["PATH"], **ENVIRONMENT},
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
