"""``python -m rostersync_local.canvas_sim``: run the simulator until SIGTERM/SIGINT.

Prints exactly one JSON line ``{"canvas_url": "http://HOST:PORT"}`` on stdout once it is serving.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from types import FrameType

from .config import COST_MODELS, SimulatorConfig
from .server import serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m rostersync_local.canvas_sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--courses", type=int, default=60)
    parser.add_argument(
        "--no-auto-approve",
        dest="auto_approve",
        action="store_false",
        help="show the Authorize page instead of redirecting with a code at once",
    )
    parser.add_argument("--token-ttl", type=int, default=3600, help="access token lifetime in seconds")
    parser.add_argument("--reference-year", type=int, default=None, help="anchor year of generated dates")
    parser.add_argument("--log-level", default="INFO")
    defaults = SimulatorConfig()
    throttle = parser.add_argument_group("throttling (Canvas leaky bucket, one per access-token grant)")
    throttle.add_argument("--throttle", action="store_true", help="enable the leaky bucket (default: off)")
    for flag, default, text in (
        ("--throttle-high-water", defaults.throttle_high_water, "refuse requests above this level"),
        ("--throttle-maximum", defaults.throttle_maximum, "the bucket never fills beyond this"),
        ("--throttle-leak-per-second", defaults.throttle_leak_per_second, "outflow per second"),
        ("--throttle-up-front-cost", defaults.throttle_up_front_cost, "held while a request is in flight"),
        ("--cpu-seconds-per-item", defaults.cpu_seconds_per_item, "documented model: cost per listed item"),
        ("--request-cost-base", defaults.request_cost_base, "stress model: cost of every API request"),
        ("--request-cost-per-item", defaults.request_cost_per_item, "stress model: cost per listed item"),
    ):
        throttle.add_argument(flag, type=float, default=default, help=f"{text} (default {default})")
    throttle.add_argument(
        "--canvas-cost",
        choices=COST_MODELS,
        default=defaults.cost_model,
        help="a request's X-Request-Cost: 'documented' (its server time, as Canvas charges; the default) or "
        "'stress' (request-cost-base + request-cost-per-item per listed item, far dearer)",
    )
    throttle.add_argument(
        "--throttle-style",
        choices=["403", "429"],
        default=defaults.throttle_style,
        help="status of a throttled response (default 403, as in the Canvas source)",
    )
    faults = parser.add_argument_group("latency and random faults of /api/v1 requests")
    for flag, default, text in (
        ("--latency-ms", defaults.latency_ms, "fixed delay of every request"),
        ("--latency-jitter-ms", defaults.latency_jitter_ms, "uniform extra delay 0..N"),
        ("--fault-rate", defaults.fault_rate, "share answering 500"),
        ("--timeout-rate", defaults.timeout_rate, "share stalling --timeout-stall-seconds first"),
        ("--reset-rate", defaults.reset_rate, "share whose connection is closed without a response"),
        ("--timeout-stall-seconds", defaults.timeout_stall_seconds, "stall of a timeout fault"),
    ):
        faults.add_argument(flag, type=float, default=default, help=f"{text} (default {default})")
    faults.add_argument("--fault-seed", type=int, default=None, help="random fault seed (default --seed)")
    events = parser.add_argument_group("live events (emitted by the /_sim/changes/* endpoints)")
    events.add_argument("--live-events-sqs-queue-url", default=None, help="send each event to this SQS queue")
    events.add_argument(
        "--live-events-aws-endpoint-url", default=None, help="SQS endpoint (e.g. a moto server)"
    )
    events.add_argument("--live-events-http-url", default=None, help="POST each event to this URL")
    events.add_argument(
        "--live-events-format", choices=["canvas", "caliper"], default=defaults.live_events_format
    )
    events.add_argument(
        "--live-events-signed", action="store_true", help="POST a JWS (RS256) instead of JSON"
    )
    for flag, default, text in (
        ("--live-events-duplicate-rate", defaults.live_events_duplicate_rate, "share of events sent twice"),
        ("--live-events-loss-rate", defaults.live_events_loss_rate, "share of events never sent"),
        ("--live-events-http-timeout-seconds", defaults.live_events_http_timeout_seconds, "HTTP timeout"),
        (
            "--live-events-retry-backoff-seconds",
            defaults.live_events_retry_backoff_seconds,
            "first retry wait",
        ),
    ):
        events.add_argument(flag, type=float, default=default, help=f"{text} (default {default})")
    events.add_argument(
        "--live-events-reorder-window",
        type=int,
        default=defaults.live_events_reorder_window,
        help="buffer N deliveries and release them shuffled (default 0 = in order)",
    )
    events.add_argument(
        "--live-events-retries",
        type=int,
        default=defaults.live_events_retries,
        help=f"retries of a failed send (default {defaults.live_events_retries})",
    )
    events.add_argument("--live-events-seed", type=int, default=None, help="loss/duplicate/reorder seed")
    events.add_argument(
        "--live-events-hostname", default=None, help="metadata hostname (default: request Host)"
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        seed=args.seed,
        courses=args.courses,
        host=args.host,
        port=args.port,
        auto_approve=args.auto_approve,
        token_ttl_seconds=args.token_ttl,
        reference_year=args.reference_year,
        throttle=args.throttle,
        throttle_high_water=args.throttle_high_water,
        throttle_maximum=args.throttle_maximum,
        throttle_leak_per_second=args.throttle_leak_per_second,
        throttle_up_front_cost=args.throttle_up_front_cost,
        throttle_style=args.throttle_style,
        cost_model=args.canvas_cost,
        cpu_seconds_per_item=args.cpu_seconds_per_item,
        request_cost_base=args.request_cost_base,
        request_cost_per_item=args.request_cost_per_item,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        fault_rate=args.fault_rate,
        timeout_rate=args.timeout_rate,
        reset_rate=args.reset_rate,
        timeout_stall_seconds=args.timeout_stall_seconds,
        fault_seed=args.fault_seed,
        live_events_sqs_queue_url=args.live_events_sqs_queue_url,
        live_events_aws_endpoint_url=args.live_events_aws_endpoint_url,
        live_events_http_url=args.live_events_http_url,
        live_events_format=args.live_events_format,
        live_events_signed=args.live_events_signed,
        live_events_duplicate_rate=args.live_events_duplicate_rate,
        live_events_loss_rate=args.live_events_loss_rate,
        live_events_reorder_window=args.live_events_reorder_window,
        live_events_seed=args.live_events_seed,
        live_events_hostname=args.live_events_hostname,
        live_events_http_timeout_seconds=args.live_events_http_timeout_seconds,
        live_events_retries=args.live_events_retries,
        live_events_retry_backoff_seconds=args.live_events_retry_backoff_seconds,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    try:
        config = config_from_args(args)
    except ValueError as exc:
        sys.stderr.write(f"invalid settings: {exc}\n")
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sim = serve(config)
    try:
        sys.stdout.write(json.dumps({"canvas_url": sim.url}) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.2):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
