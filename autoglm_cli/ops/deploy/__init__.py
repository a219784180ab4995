"""`autoglm deploy`: local process, Docker container or systemd unit; health-gated, with rollback.

One module per target (`local`, `docker_target`, `systemd_target`) behind the
`Target` protocol (`base.py`); `flow.py` is the deploy itself, `gate.py` the
health gate, `state.py` the state directory. The names below load on first use:
`health` and `redeploy` import one module of this package, not the whole flow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy_exports import lazy_exports

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
__all__ = [  # literal, so linters and type checkers see the re-exports
    "DeployReport",
    "DeploymentState",
    "StateDir",
    "deploy",
    "resolve_state_dir",
    "status",
    "stop",
]
__getattr__ = lazy_exports(__name__, _HOMES)
