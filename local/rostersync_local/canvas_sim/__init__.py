"""Canvas LMS simulator: a real HTTP server that behaves like Canvas for a roster-sync developer key.

>>> from rostersync_local.canvas_sim import SimulatorConfig, serve
>>> sim = serve(SimulatorConfig(seed=7, courses=60))  # doctest: +SKIP
>>> sim.url, sim.state, sim.stop()  # doctest: +SKIP
"""

from .api import DEFAULT_SCOPES, SEARCH_USERS_SCOPE
from .app import CanvasSimulatorApp
from .config import SimulatorConfig
from .server import RunningSimulator, serve
from .state import SimulatorState

__all__ = [
    "DEFAULT_SCOPES",
    "SEARCH_USERS_SCOPE",
    "CanvasSimulatorApp",
    "RunningSimulator",
    "SimulatorConfig",
    "SimulatorState",
    "serve",
]
