"""The deploy targets by name, and the "does the state file match what runs" check."""

from __future__ import annotations

from ...errors import UsageError
from .base import Target
from .state import DeploymentState

TARGETS = ("local", "docker", "systemd")


def get_target(name: str) -> Target:
    if name == "local":
        from .local import LocalTarget

        return LocalTarget()
    if name == "docker":
        from .docker_target import DockerTarget

        return DockerTarget()
    if name == "systemd":
        from .systemd_target import SystemdTarget

        return SystemdTarget()
    raise UsageError(f"unknown deploy target {name!r}", remedy=f"Use one of: {', '.join(TARGETS)}.")


def state_matches(state: DeploymentState | None, *, container: str | None = None) -> tuple[bool, str]:
    """Does the recorded deployment run, and hold the port it was recorded with?"""
    if state is None:
        from .docker_target import DockerTarget

        probe = DeploymentState(
            target="docker",
            name=container or "",
            url="",
            port=0,
            version="",
            config_hash="",
            config_path="",
            model="",
            container_name=container,
        )
        live = DockerTarget().liveness(probe)
        return live.alive, live.detail
    if state.status == "stopped":
        return False, f"the state file records {state.target} deployment {state.name} as stopped"
    target = get_target(state.target)
    if state.target == "docker":
        return target.matches(state)  # type: ignore[attr-defined]
    live = target.liveness(state)
    if not live.alive:
        return False, f"{live.detail} (the state file says it runs)"
    if not target.owns_port(state, state.port):
        return False, f"{live.detail}, but port {state.port} is not held by it"
    return True, f"{live.detail}, port {state.port}, config {state.config_hash[:12]}"
