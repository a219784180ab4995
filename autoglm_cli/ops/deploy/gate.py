"""The health gate: a new deployment counts only when it is ready and answers for real.

Waits for `/readyz` within a budget that grows with the model's size (a slow
load is normal, not a failure), gives up at once when the process or container
exits, then requires a full health check whose required probes pass, the tiny
real inference among them. The clock and sleep are injectable for unit tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..health import HealthReport, HealthTarget, check_health, failed_nodes, json_or_empty, readiness_reason
from .base import Target
from .health_target import state_check
from .state import DeploymentState

POLL_S = 0.25
FAILED_GRACE_S = 3.0  # how long "every node failed" must last before the gate gives up early


@dataclass(frozen=True)
class GateResult:
    ok: bool
    reason: str
    waited_s: float
    timeout_s: float
    health: HealthReport | None


def health_gate(
    target: Target,
    state: DeploymentState,
    *,
    timeout: float,
    api_key: str | None,
    auth: bool,
    cache_dir: Path | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> GateResult:
    import requests

    started = clock()
    deadline = started + timeout
    probe = HealthTarget(
        url=state.url,
        source="gate",
        model=state.model,
        cache_dir=cache_dir,
        state=state,
        container=state.container_name if state.target == "docker" else None,
        api_key=api_key,
        auth=auth,
        state_check=state_check(state),
    )
    session = requests.Session()
    ready = False
    last = "no answer yet"
    failed_since: float | None = None
    try:
        while clock() < deadline:
            live = target.liveness(state)
            if not live.alive:
                return GateResult(
                    False,
                    f"the service exited while starting: {live.detail}",
                    clock() - started,
                    timeout,
                    None,
                )
            try:
                response = session.get(f"{state.url}/readyz", timeout=min(5.0, max(0.5, deadline - clock())))
                if response.status_code == 200:
                    ready = True
                    break
                body = json_or_empty(response)
                last = f"/readyz answered {response.status_code}: " + (
                    readiness_reason(body) or response.text.strip()[:200]
                )
                # Every node failed to load (a bad model path, weights that do not load): waiting
                # longer will not help. Give a replacement node a moment, then stop waiting.
                if failed_nodes(body):
                    failed_since = failed_since if failed_since is not None else clock()
                    if clock() - failed_since >= FAILED_GRACE_S:
                        return GateResult(
                            False,
                            f"every node failed: {'; '.join(failed_nodes(body))}",
                            clock() - started,
                            timeout,
                            check_health(probe, timeout=5.0),
                        )
                else:
                    failed_since = None
            except requests.RequestException as exc:
                last = f"/readyz: {type(exc).__name__}"
            sleep(POLL_S)
    finally:
        session.close()
    if not ready:
        report = check_health(probe, timeout=5.0)
        return GateResult(
            False, f"not ready within {timeout:.0f} s ({last})", clock() - started, timeout, report
        )
    # Ready: the required probes, the real inference among them, must pass. A first
    # request may still be warming up; retry within the budget.
    while True:
        report = check_health(probe, timeout=max(5.0, deadline - clock()))
        if report.ok:
            return GateResult(True, "ready and answering", clock() - started, timeout, report)
        if clock() + POLL_S >= deadline or not target.liveness(state).alive:
            failed = ", ".join(f"{c.name}: {c.detail}" for c in report.failed_required)
            return GateResult(False, f"health checks failed: {failed}", clock() - started, timeout, report)
        sleep(POLL_S * 2)
