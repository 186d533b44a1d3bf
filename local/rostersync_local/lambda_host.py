"""One warm Lambda execution environment: a child process that imports a handler and runs events.

The runner writes one JSON line per invocation to stdin: {"event": ..., "request_id": ..., "deadline": ...}
and reads one JSON line back from the protocol pipe: {"result": ...} or {"error": {...}}. The handler's
own stdout (Powertools' JSON logs) goes to stderr, which the runner saves as the function's log.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any


@dataclass
class LocalLambdaContext:
    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self.deadline - time.time()) * 1000), 0)


def _load_handler(code_dir: str, handler: str) -> Any:
    module_name, _, function_name = handler.rpartition(".")
    sys.path.insert(0, code_dir)
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(code_dir, f"{module_name}.py"))
    if spec is None or spec.loader is None:
        raise ImportError(f"no module {module_name} in {code_dir}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, function_name)


def main() -> int:
    code_dir, handler_name = sys.argv[1], sys.argv[2]
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # handler prints go to the log, not the protocol
    handler = _load_handler(code_dir, handler_name)
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{os.environ['AWS_LAMBDA_FUNCTION_NAME']}"
    for line in sys.stdin:
        request = json.loads(line)
        context = LocalLambdaContext(
            function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            memory_limit_in_mb=int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")),
            invoked_function_arn=arn,
            aws_request_id=request["request_id"],
            deadline=request["deadline"],
        )
        try:
            reply: dict[str, Any] = {"result": handler(request["event"], context)}
        except Exception as error:  # the Lambda runtime reports any exception as a function error
            reply = {
                "error": {
                    "errorType": type(error).__name__,
                    "errorMessage": str(error),
                    "stackTrace": traceback.format_exception(error),
                }
            }
        sys.stdout.flush()
        protocol.write(json.dumps(reply, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
