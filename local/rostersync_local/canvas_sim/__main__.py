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

from .config import SimulatorConfig
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    config = SimulatorConfig(
        seed=args.seed,
        courses=args.courses,
        host=args.host,
        port=args.port,
        auto_approve=args.auto_approve,
        token_ttl_seconds=args.token_ttl,
        reference_year=args.reference_year,
    )
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
