"""`autoglm deploy`: local process, Docker container or systemd unit; health-gated, with rollback.

One module per target (`local`, `docker_target`, `systemd_target`) behind the
`Target` protocol (`base.py`); `flow.py` is the deploy itself, `gate.py` the
health gate, `state.py` the state directory.
"""

from .flow import DeployReport, deploy, status, stop
from .state import DeploymentState, StateDir, resolve_state_dir

__all__ = ["DeployReport", "DeploymentState", "StateDir", "deploy", "resolve_state_dir", "status", "stop"]
