"""`autoglm rollback`: the previous recorded deployment runs again, health-gated, for every target.

The previous record (`previous.json`) is started fresh from its own config snapshot
(and, for docker, its own image): beside the running one and handed the port over
when both are local or both docker (no request dropped), else after stopping the
running one. A previous version that fails its gate is removed and the running one
kept (exit 4). Afterwards the two records have swapped places, so a second rollback
goes forward again.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ...errors import UsageError
from ...progress import NULL_PROGRESS, Progress
from .flow import DeployReport, _record_config, _replace
from .health_key import ensure_health_key
from .model_info import default_model, health_timeout, hub_cache_dir
from .repair import deploy_lock, load_current
from .state import StateDir, resolve_state_dir
from .targets import get_target


def rollback(
    config,
    *,
    state_dir: str | Path | None = None,
    timeout: float | None = None,
    progress: Progress = NULL_PROGRESS,
) -> DeployReport:
    state = StateDir(resolve_state_dir(config, state_dir))
    with deploy_lock(state):
        current = load_current(state)
        previous = state.load_previous()
        if previous is None:
            raise UsageError(
                f"no previous deployment is recorded in {state.root}; nothing to roll back to",
                remedy="A rollback needs an earlier deploy that a later one replaced "
                "(`autoglm deploy --status` shows what is recorded).",
            )
        backend = get_target(previous.target)
        current_backend = get_target(current.target) if current is not None else None
        current_alive = bool(
            current is not None and current.status != "stopped" and current_backend.liveness(current).alive
        )
        beside = bool(current_alive and current.target == previous.target and backend.swaps)
        previous_config = _record_config(previous)
        api_key = ensure_health_key(previous_config, state)
        gate = dict(
            timeout=timeout
            if timeout is not None
            else health_timeout(previous_config, default_model(previous_config)),
            api_key=api_key,
            auth=previous_config.gateway.auth,
            cache_dir=hub_cache_dir(previous_config),
        )
        report = _replace(
            state,
            backend,
            lambda side_port: backend.restore(previous, side_port=side_port, beside=beside),
            current if current_alive else None,
            current_backend,
            beside=beside,
            gate=gate,
            progress=progress,
            tidy=False,
        )
    if report.action == "deployed":
        return replace(
            report,
            action="restored",
            message=f"rolled back to the previous deployment (config {previous.config_hash[:12]}); "
            + report.message,
        )
    return report
