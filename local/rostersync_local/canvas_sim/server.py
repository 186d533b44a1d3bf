"""Running the simulator: :func:`serve` starts a threaded Werkzeug server in the background."""

from __future__ import annotations

import dataclasses
import logging
import threading
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .api import DEFAULT_SCOPES
from .app import CanvasSimulatorApp
from .config import SimulatorConfig
from .state import SimulatorState

logger = logging.getLogger("rostersync_local.canvas_sim")

DEFAULT_REDIRECT_URI = "http://127.0.0.1/oauth/callback"


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's access log prints the query string (codes, ``access_token``...): log the path only."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s %s", self.command, urlsplit(self.path).path, code)


def _url_host(host: str) -> str:
    if host in {"", "0.0.0.0"}:  # noqa: S104 - only mapping a wildcard bind address to a usable URL
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class RunningSimulator:
    """A simulator serving in a background thread. ``url`` has no trailing slash."""

    def __init__(self, state: SimulatorState, server: BaseWSGIServer) -> None:
        self.state = state
        self.config = state.config
        self._server = server
        self.url = f"http://{_url_host(state.config.host)}:{server.server_port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="canvas-sim", daemon=True
        )
        self._stopped = False
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def stop(self) -> None:
        """Shut the server down and join its thread (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self.state.stopping.set()  # wakes requests sleeping in latency or timeout stalls
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self.state.close()
        logger.info("Canvas simulator on %s stopped", self.url)

    def create_token(
        self,
        scopes: list[str] | None = None,
        redirect_uri: str = DEFAULT_REDIRECT_URI,
        name: str = "Test Key",
    ) -> dict[str, Any]:
        """In-process shortcut for tests: register a developer key and grant it a token (no HTTP flow).

        Returns ``access_token``, ``refresh_token``, ``expires_in``, ``client_id``, ``client_secret``,
        ``redirect_uri`` and ``scopes``.
        """
        state = self.state
        wanted = tuple(scopes) if scopes is not None else DEFAULT_SCOPES
        with state.lock:
            key_scopes = tuple(dict.fromkeys((*DEFAULT_SCOPES, *wanted)))
            key = state.tokens.register_key(name, redirect_uri, key_scopes)
            code = state.tokens.issue_code(
                key.client_id, redirect_uri, wanted, state.institution.api_user.id, state.now()
            )
            state.tokens.consume_code(code.code)
            grant = state.tokens.issue_grant(code, state.now(), state.config.token_ttl_seconds)
            return {
                "access_token": grant.access_token,
                "refresh_token": grant.refresh_token,
                "expires_in": state.config.token_ttl_seconds,
                "client_id": key.client_id,
                "client_secret": key.client_secret,
                "redirect_uri": redirect_uri,
                "scopes": list(wanted),
            }

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningSimulator(url={self.url!r}, seed={self.config.seed}, courses={self.config.courses})"


def serve(config: SimulatorConfig | None = None) -> RunningSimulator:
    """Generate the institution and start serving it; call ``.stop()`` (or use ``with``) when done."""
    config = dataclasses.replace(config) if config is not None else SimulatorConfig()
    state = SimulatorState(config)
    app = CanvasSimulatorApp(state)
    server = make_server(config.host, config.port, app, threaded=True, request_handler=_QuietRequestHandler)
    sim = RunningSimulator(state, server)
    logger.info("Canvas simulator serving on %s (seed=%s, courses=%s)", sim.url, config.seed, config.courses)
    return sim
