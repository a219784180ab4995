"""`autoglm deploy`: replace the running deployment, health-gated, with rollback.

Blue-green (a running local or docker deployment replaced by one of the same target):

    check the port -> prepare (build the image) -> start the new one beside the
    running one, on a side port -> health gate there -> it takes the port over
    (SIGUSR1, runtime/swap.py) -> the old one drains and stops (kept restorable);
    a failed gate removes only the new one (exit 4): the old one served throughout

Otherwise (first deploy, another target, systemd):

    check the port -> prepare -> retire the running one (kept restorable) -> launch
    the new one -> health gate -> keep it, or discard it and restore the previous
    one (exit 4)

Nothing running is touched before the checks and slow preparation succeeded.
An already-current deployment (same config, version and weights, healthy) is
left alone. Every transition is written to the state file before the next one
starts, so an interrupted deploy leaves an accurate record.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ... import __version__
from ...config import Config
from ...errors import AutoglmError, ExitCode
from ...progress import NULL_PROGRESS, Progress
from ...words import Word
from ..health import HealthReport, HealthTarget, check_health
from .base import LaunchContext, Target, Tidied, launch_context
from .gate import GateResult, health_gate
from .health_key import ensure_health_key
from .health_target import state_check
from .model_info import health_timeout, hub_cache_dir
from .ports import PortInUse, free_port, port_holder
from .repair import deploy_lock, load_current
from .state import DeploymentState, StateDir, resolve_state_dir
from .systemd_target import UnitCheck, render_unit, verify_unit
from .targets import get_target


class DeployAction(Word):
    DEPLOYED = "deployed"
    UNCHANGED = "unchanged"
    PLANNED = "planned"
    RENDERED = "rendered"
    STOPPED = "stopped"
    STATUS = "status"
    NOT_RUNNING = "not-running"
    FAILED = "failed"
    RESTORED = "restored"
    ROLLED_BACK = "rolled_back"
    RESTORE_FAILED = "restore_failed"


# Outcome -> exit code (DESIGN.md's table); keyed by the words, which equal the members.
_EXIT = {
    "deployed": ExitCode.OK,
    "unchanged": ExitCode.OK,
    "planned": ExitCode.OK,
    "rendered": ExitCode.OK,
    "stopped": ExitCode.OK,
    "status": ExitCode.OK,
    "not-running": ExitCode.CHECK_FAILED,
    "failed": ExitCode.CHECK_FAILED,
    "restored": ExitCode.OK,  # rollback: the previous version runs again
    "rolled_back": ExitCode.ROLLED_BACK,
    "restore_failed": ExitCode.ENVIRONMENT,
}


@dataclass(frozen=True)
class DeployReport:
    action: DeployAction  # a word is accepted and checked
    target: str
    state_dir: str
    message: str
    deployment: DeploymentState | None = None  # what runs now (or was acted on)
    replaced: DeploymentState | None = None  # the deployment it replaced / restored
    health: HealthReport | None = None  # the gate's (or status's) health report
    waited_s: float = 0.0
    timeout_s: float = 0.0
    plan: tuple[str, ...] = ()
    unit: str | None = None  # systemd: the rendered unit
    unit_check: UnitCheck | None = None
    logs: str = ""  # the failed deployment's last log lines
    liveness: str = ""
    removed: tuple[str, ...] = ()  # what the deploy tidied away once healthy (old image tags)
    tidy_problem: str | None = None  # what tidying could not do (the deployment is fine)
    monitoring: tuple[str, ...] = ()  # the monitoring kit's files written beside it

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", DeployAction(self.action))

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT[self.action]


def deploy(config: Config, **options) -> DeployReport:
    """Deploy `config` (see `_deploy` for the options); then, once it runs, the monitoring kit
    beside it when `deploy.monitoring_dir` is set (`--with-monitoring`)."""
    report = _deploy(config, **options)
    where = config.deploy.monitoring_dir
    if not where or report.action not in ("deployed", "unchanged") or report.deployment is None:
        return report
    from .monitoring import write_monitoring

    return replace(report, monitoring=write_monitoring(where, report.deployment.url))


def _deploy(
    config: Config,
    *,
    target: str | None = None,
    state_dir: str | Path | None = None,
    host: str | None = None,
    port: int | None = None,
    install: bool = False,
    dry_run: bool = False,
    force: bool = False,
    timeout: float | None = None,
    progress: Progress = NULL_PROGRESS,
    blue_green: bool = True,
) -> DeployReport:
    """Deploy `config` to `target` (default `deploy.target`); see the module docstring.

    `blue_green=False` stops the running deployment before starting the new one (the old
    behaviour: the benchmark's anchor)."""
    from ...config import with_overrides

    target_name = target or config.deploy.target
    config = with_overrides(config, {"gateway.host": host or None, "gateway.port": port or None})
    state = StateDir(resolve_state_dir(config, state_dir))
    backend = get_target(target_name)
    # A unit is rendered for another machine too: its snapshot is written (ExecStart names it);
    # a dry run writes nothing at all.
    ctx = launch_context(config, state, write=not dry_run)
    gate_timeout = timeout if timeout is not None else health_timeout(config, ctx.model)

    if target_name == "systemd" and not install:
        text = render_unit(ctx)
        check = verify_unit(text, config.deploy.name)
        message = "unit rendered" + ("" if check.ok else "; systemd-analyze verify found problems")
        return DeployReport(
            "rendered",
            target_name,
            str(state.root),
            message,
            unit=text,
            unit_check=check,
            plan=tuple(backend.plan(ctx)),
        )

    current = load_current(state, repair=not dry_run)
    current_backend = get_target(current.target) if current is not None else None
    current_alive = bool(
        current is not None and current.status != "stopped" and current_backend.liveness(current).alive
    )
    beside = bool(blue_green and current_alive and current.target == target_name and backend.swaps)

    if dry_run:
        plan = [f"health gate: /readyz and a tiny inference within {gate_timeout:.0f} s, else roll back"]
        if current_alive:
            how = (
                "start beside it on a side port, hand the port over once healthy, then drain it"
                if beside
                else "stop it first (a different target cannot share the port)"
            )
            running = f"the running {current.target} deployment (config {current.config_hash[:12]})"
            plan.insert(0, f"replace {running}: {how}")
        if config.deploy.monitoring_dir:
            from .monitoring import monitoring_plan

            plan += monitoring_plan(config.deploy.monitoring_dir)
        return DeployReport(
            "planned",
            target_name,
            str(state.root),
            "dry run: nothing changed",
            deployment=current,
            plan=tuple(backend.plan(ctx) + plan),
            timeout_s=gate_timeout,
        )

    with deploy_lock(state):
        if current_alive and not force and _is_current(current, ctx, target_name, backend):
            task = progress.task("checking the running deployment", total=None, transient=True)
            report = check_health(_probe(current, ctx), timeout=10.0)
            task.finish()
            if report.ok:
                return DeployReport(
                    "unchanged",
                    target_name,
                    str(state.root),
                    "already running this config, version and weights; healthy",
                    deployment=current,
                    health=report,
                )

        holder = port_holder(ctx.port)
        if holder is not None and not (current_alive and current_backend.owns_port(current, ctx.port)):
            raise PortInUse(holder)

        task = progress.task(f"preparing the {target_name} deployment", total=None, transient=True)
        backend.prepare(ctx)
        api_key = ensure_health_key(ctx.config, state)
        task.finish()
        gate = dict(
            timeout=gate_timeout, api_key=api_key, auth=config.gateway.auth, cache_dir=hub_cache_dir(config)
        )
        return _replace(
            state,
            backend,
            lambda side_port: backend.launch(ctx, side_port=side_port, beside=beside),
            current if current_alive else None,
            current_backend,
            beside=beside,
            gate=gate,
            progress=progress,
            tidy=True,
        )


def _replace(
    state: StateDir,
    backend: Target,
    start,
    current: DeploymentState | None,
    current_backend: Target | None,
    *,
    beside: bool,
    gate: dict,
    progress: Progress,
    tidy: bool,
) -> DeployReport:
    """Start the new deployment (`start(side_port)`) and make it the current one, or fail safely.

    beside (blue-green): the new one starts on a side port while `current` keeps serving;
    gated there; then it takes the port over, the old one drains and goes. A failed gate
    removes only the new one. Otherwise (nothing running, another target): the old one
    stops first, and a failed gate brings it back (`_roll_back`).
    """
    target_name = backend.name
    previous_record = state.load_previous() if beside else None
    if current is not None and not beside:
        task = progress.task(f"stopping the running {current.target} deployment", total=None, transient=True)
        current_backend.retire(current)
        task.finish()
    side_port = free_port()

    new: DeploymentState | None = None
    try:
        try:
            new = start(side_port)
        except AutoglmError as exc:
            # Could not even start (an image that will not run, a unit systemd rejects): as bad
            # as failing the gate, and handled the same way.
            result = GateResult(False, f"it could not start: {exc.message}", 0.0, gate["timeout"], None)
        else:
            if beside:
                state.save_next(new)  # the current one runs on: it stays the current record
            else:
                state.save_previous(current)
                state.save_current(new)
            where = _side(new, side_port) if beside else new
            task = progress.task(f"health gate (up to {gate['timeout']:.0f} s)", total=None, transient=True)
            result = health_gate(backend, where, **gate)
            task.finish()
            if result.ok and beside:
                task = progress.task("handing the port over", total=None, transient=True)
                result = _take_over(backend, new, result)
                task.finish()
    except BaseException:
        # Interrupted or crashed mid-deploy: the running deployment stays (or comes back).
        if new is not None:
            backend.discard(new)
        if beside:
            state.save_next(None)
        elif current is not None:
            restored = current_backend.restore(current, side_port=side_port, beside=False)
            state.save_current(_mark_running(restored, current_backend))
            state.save_previous(previous_record)
        raise

    if not result.ok or new is None:
        if beside:
            logs = backend.logs(new) if new is not None else ""
            if new is not None:
                backend.discard(new)
            state.save_next(None)
            return DeployReport(
                "rolled_back",
                target_name,
                str(state.root),
                f"the new deployment failed its health gate ({result.reason}); it was removed, and the "
                "running one served throughout",
                deployment=current,
                replaced=new,
                health=result.health,
                waited_s=result.waited_s,
                timeout_s=result.timeout_s,
                logs=logs,
            )
        return _roll_back(state, backend, new, current, current_backend, result, target_name)

    live = _mark_running(new, backend)
    if beside:
        # Recorded before the old one goes: a deploy killed from here on leaves the truth behind.
        state.save_previous(current)
        state.save_current(live)
        state.save_next(None)
        task = progress.task("draining the old deployment", total=None, transient=True)
        current_backend.retire(current)
        task.finish()
        live = _mark_running(backend.promote(live), backend)
    state.save_current(live)
    tidied = backend.tidy(live) if tidy else Tidied()
    return DeployReport(
        "deployed",
        target_name,
        str(state.root),
        f"deployed and healthy in {result.waited_s:.1f} s"
        + (" (served throughout: the old one handed the port over and drained)" if beside else ""),
        deployment=live,
        replaced=current,
        health=result.health,
        waited_s=result.waited_s,
        timeout_s=result.timeout_s,
        removed=tidied.removed,
        tidy_problem=tidied.problem,
    )


def _side(record: DeploymentState, side_port: int) -> DeploymentState:
    """The record as the health gate sees a deployment that serves on its side port."""
    host = record.url.rsplit(":", 1)[0]
    return replace(record, url=f"{host}:{side_port}", port=side_port)


def _take_over(backend: Target, new: DeploymentState, gate: GateResult, timeout: float = 15.0) -> GateResult:
    """SIGUSR1 to the new deployment; done when a second socket listens on the port."""
    import time

    from ...runtime.swap import listeners_on

    before = listeners_on(new.port)
    try:
        backend.join(new)
    except AutoglmError as exc:
        return replace(gate, ok=False, reason=exc.message)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listeners_on(new.port) > before:
            return gate
        if not backend.liveness(new).alive:
            break
        time.sleep(0.05)
    return replace(gate, ok=False, reason=f"it did not take port {new.port} over within {timeout:.0f} s")


def _roll_back(
    state: StateDir,
    backend: Target,
    new: DeploymentState | None,
    previous: DeploymentState | None,
    previous_backend: Target | None,
    gate: GateResult,
    target_name: str,
) -> DeployReport:
    logs = backend.logs(new) if new is not None else ""
    if new is not None:
        backend.discard(new)
    common = dict(health=gate.health, waited_s=gate.waited_s, timeout_s=gate.timeout_s, logs=logs)
    if previous is None or previous_backend is None:
        if new is not None:
            state.save_current(replace(new, status="stopped"))
        return DeployReport(
            "failed",
            target_name,
            str(state.root),
            f"the new deployment failed its health gate ({gate.reason}); it was stopped and "
            "there was no previous deployment to restore",
            deployment=None,
            replaced=new,
            **common,
        )
    try:
        restored = previous_backend.restore(previous, side_port=free_port(), beside=False)
        state.save_current(restored)
        previous_config = _record_config(previous)
        regate = health_gate(
            previous_backend,
            restored,
            timeout=max(gate.timeout_s, 30.0),
            api_key=state.read_health_key(),
            auth=previous_config.gateway.auth,
            cache_dir=hub_cache_dir(previous_config),
        )
    except AutoglmError as exc:
        return DeployReport(
            "restore_failed",
            target_name,
            str(state.root),
            f"the new deployment failed its health gate ({gate.reason}) and restoring the previous "
            f"one failed too: {exc.message}",
            replaced=new,
            **common,
        )
    live = _mark_running(restored, previous_backend)
    state.save_current(live)
    state.save_previous(None)
    verdict = (
        "restored and healthy" if regate.ok else f"restored, but it is not healthy either ({regate.reason})"
    )
    return DeployReport(
        "rolled_back",
        target_name,
        str(state.root),
        f"the new deployment failed its health gate ({gate.reason}); the previous one was {verdict}",
        deployment=live,
        replaced=new,
        **common,
    )


def _record_config(record: DeploymentState):
    """The config a recorded deployment runs with (its snapshot)."""
    from ...config import load_config

    return load_config(record.config_path, environ={})


def _is_current(current: DeploymentState, ctx: LaunchContext, target_name: str, backend: Target) -> bool:
    if target_name == "docker" and current.image != backend.image_tag(ctx):  # type: ignore[attr-defined]
        return False  # the code changed: a new image
    return (
        current.target == target_name
        and current.config_hash == ctx.snapshot.hash
        and current.version == __version__
        and current.weights_revision == ctx.model.revision
        and current.port == ctx.port
    )


def _probe(record: DeploymentState, ctx: LaunchContext) -> HealthTarget:
    return HealthTarget(
        url=record.url,
        source="deploy",
        model=record.model,
        cache_dir=hub_cache_dir(ctx.config),
        state=record,
        container=record.container_name if record.target == "docker" else None,
        api_key=ctx.state.read_health_key(),
        auth=ctx.config.gateway.auth,
        state_check=state_check(record),
    )


def _mark_running(record: DeploymentState, backend: Target) -> DeploymentState:
    ports = dict(record.ports)
    listening = getattr(backend, "listening_ports", None)
    if listening is not None:
        ports["listening"] = listening(record)
    return replace(record, status="running", ports=ports)


# --- --stop and --status ------------------------------------------------------------


def stop(config: Config, *, state_dir: str | Path | None = None) -> DeployReport:
    state = StateDir(resolve_state_dir(config, state_dir))
    current = load_current(state)
    if current is None:
        return DeployReport(
            "stopped", config.deploy.target, str(state.root), "no deployment recorded; nothing to stop"
        )
    backend = get_target(current.target)
    backend.stop(current)
    stopped = replace(current, status="stopped")
    state.save_current(stopped)
    return DeployReport(
        "stopped",
        current.target,
        str(state.root),
        f"stopped {current.target} deployment {current.name}",
        deployment=stopped,
    )


def status(config: Config, *, state_dir: str | Path | None = None) -> DeployReport:
    state = StateDir(resolve_state_dir(config, state_dir))
    current = load_current(state)
    if current is None:
        return DeployReport(
            "not-running", config.deploy.target, str(state.root), f"no deployment recorded in {state.root}"
        )
    backend = get_target(current.target)
    live = backend.liveness(current)
    if current.status == "stopped" or not live.alive:
        detail = "stopped" if current.status == "stopped" else f"not running: {live.detail}"
        if current.status != "stopped":
            current = replace(current, status="dead")  # what runs, not what was recorded
        return DeployReport(
            "not-running",
            current.target,
            str(state.root),
            detail,
            deployment=current,
            replaced=state.load_previous(),
            liveness=live.detail,
            logs=backend.logs(current, 15),
        )
    listening = getattr(backend, "listening_ports", None)
    if listening is not None:
        current = replace(current, ports={**current.ports, "listening": listening(current)})
    return DeployReport(
        "status",
        current.target,
        str(state.root),
        f"running: {live.detail}",
        deployment=current,
        replaced=state.load_previous(),
        liveness=live.detail,
    )
