"""X-Ray tracing of a function's handler, where the function traces."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

# tracing.tracer defers the X-Ray SDK to Tracer's construction, so this import does not bring it in.
from aws_lambda_powertools.tracing.tracer import Tracer

HandlerT = TypeVar("HandlerT", bound=Callable[..., object])


def tracing_enabled() -> bool:
    """Powertools' own rule: in Lambda (not SAM local) unless POWERTOOLS_TRACE_DISABLED is true."""
    return not Tracer._is_tracer_disabled()


def traced(handler: HandlerT) -> HandlerT:
    """The handler inside Powertools' Tracer (its segment, the cold start annotation, errors as metadata,
    AWS and HTTP calls patched) when the function traces; the handler itself when it does not.

    Constructing a Tracer imports the X-Ray SDK even to disable it, and that import builds two X-Ray clients
    (0.01-0.05 s of CPU per cold start, measured here), so a function that does not trace constructs none.
    Decided at import, as Tracer decides, so a tracing function fails there, not at its first request, if
    the SDK is missing.
    """
    if not tracing_enabled():
        return handler
    return Tracer().capture_lambda_handler(handler)  # type: ignore[return-value]
