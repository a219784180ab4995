"""`autoglm deploy`: local process, Docker container or systemd unit; health-gated, with rollback.

One module per target (`local`, `docker_target`, `systemd_target`) behind the
`Target` protocol (`base.py`); `flow.py` is the deploy itself, `gate.py` the
health gate, `state.py` the state directory.

The names below load on first use (PEP 562): `health` and `redeploy` import one
module of this package and should not pay for the whole deploy flow at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .flow import DeployReport, deploy, status, stop
    from .state import DeploymentState, StateDir, resolve_state_dir

_HOMES = {
    "DeployReport": "flow",
    "deploy": "flow",
    "status": "flow",
    "stop": "flow",
    "DeploymentState": "state",
    "StateDir": "state",
    "resolve_state_dir": "state",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
