"""`autoglm deploy`: start, replace, stop or show the deployment (local, docker or systemd)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..errors import Interrupted, UsageError
from .context import start
from .health import health_table
from .options import (
    ConfigOption,
    DryRunOption,
    ForceOption,
    JsonOption,
    QuietOption,
    StateDirOption,
    TargetOption,
)

if TYPE_CHECKING:
    from rich.console import Console

    from ..ops.deploy import DeployReport

HELP = "Launch the runtime locally, in Docker or as a systemd unit; health-gated, with rollback."
EXAMPLES = (
    "autoglm deploy --config examples/local.yaml",
    "autoglm deploy --status --config examples/local.yaml",
    "autoglm deploy --target systemd --config examples/systemd.yaml > a.service",
    "autoglm deploy --stop --config examples/local.yaml",
)


def command(
    ctx: typer.Context,
    target: TargetOption = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the recorded deployment.")] = False,
    status: Annotated[
        bool, typer.Option("--status", help="Show the recorded deployment and whether it runs.")
    ] = False,
    install: Annotated[
        bool,
        typer.Option(
            "--install", help="systemd: write the unit, daemon-reload, enable --now (else print it)."
        ),
    ] = False,
    host: Annotated[
        Optional[str], typer.Option("--host", help="Bind address (default: gateway.host).")
    ] = None,
    port: Annotated[
        Optional[int], typer.Option("--port", min=1, max=65535, help="Port (default: gateway.port).")
    ] = None,
    force: ForceOption = False,
    timeout: Annotated[
        Optional[float],
        typer.Option(
            "--timeout", min=1, help="Health gate budget in seconds (default: grows with the model size)."
        ),
    ] = None,
    with_monitoring: Annotated[
        Optional[Path],
        typer.Option(
            "--with-monitoring",
            metavar="DIR",
            help="Write the Prometheus scrape config, rules and Grafana dashboard for this"
            " deployment into DIR (deploy.monitoring_dir; redeploy writes them again).",
        ),
    ] = None,
    state_dir: StateDirOption = None,
    dry_run: DryRunOption = False,
    config: ConfigOption = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "deploy", json=json, quiet=quiet, config_path=config)
    if stop and status:
        raise UsageError("give --stop or --status, not both")
    from ..config import with_overrides
    from ..ops import deploy as ops

    cfg = run.config
    if with_monitoring is not None:
        cfg = with_overrides(cfg, {"deploy.monitoring_dir": str(with_monitoring)})

    if stop:
        report = ops.stop(run.config, state_dir=state_dir)
    elif status:
        report = ops.status(run.config, state_dir=state_dir)
    else:
        with run.out.progress() as progress, interrupt_says_what_runs(run, state_dir):
            report = ops.deploy(
                cfg,
                target=target.value if target else None,
                state_dir=state_dir,
                host=host,
                port=port,
                install=install,
                dry_run=dry_run,
                force=force,
                timeout=timeout,
                progress=progress,
            )
        if report.action == "rendered":
            run.out.data(report.unit or "")  # the unit itself is the data: `> autoglm.service`
            if report.unit_check is not None and report.unit_check.output:
                run.out.warn(f"{report.unit_check.tool or 'verify'}: {report.unit_check.output}")
            elif report.unit_check is not None and report.unit_check.tool:
                run.out.note(f"{report.unit_check.tool}: ok")
            return run.out.result(report, exit_code=report.exit_code)
        if report.tidy_problem:
            run.out.warn(f"deployed and healthy; old images not all removed: {report.tidy_problem}")
    return run.out.result(report, exit_code=report.exit_code, human=lambda console: render(console, report))


@contextmanager
def interrupt_says_what_runs(run, state_dir):
    """Ctrl-C mid-deploy: ops puts the previous deployment back; tell the user what runs now."""
    try:
        yield
    except KeyboardInterrupt:
        raise interrupted_deploy(run, state_dir) from None


def interrupted_deploy(run, state_dir) -> Interrupted:
    from ..ops import deploy as ops

    during = f"interrupted during {run.out.phase}" if run.out.phase else "interrupted"
    try:
        now = ops.status(run.config, state_dir=state_dir)
    except Exception as exc:  # the state cannot be read: still say what was interrupted
        return Interrupted(f"{during}; cannot tell what runs now: {exc}", remedy="")
    record = now.deployment
    # ops.deploy's own steps replace the running deployment; redeploy's earlier ones do not.
    replacing = any(
        word in (run.out.phase or "") for word in ("health gate", "stopping the running", "preparing")
    )
    if now.action == "status" and record is not None:
        where = (
            f"pid {record.pid}" if record.pid else (record.container_name or record.unit_path or record.url)
        )
        what = (
            "rolled back to the previous deployment" if replacing else "the running deployment is untouched"
        )
        return Interrupted(f"{during}: {what} ({where}, version {record.version})", remedy="")
    if replacing:
        return Interrupted(f"{during}: the new deployment was stopped; nothing runs now", remedy="")
    return Interrupted(f"{during}; no deployment runs", remedy="")


def render(console: Console, report: DeployReport) -> None:
    from rich.markup import escape

    style = {
        "deployed": "green",
        "unchanged": "green",
        "restored": "green",
        "rolled_back": "bold yellow",
    }.get(report.action, "")
    if report.exit_code and report.action not in ("rolled_back",):
        style = "bold red"
    console.print(
        f"[{style}]{report.action}[/]: {escape(report.message)}" if style else escape(report.message)
    )
    if report.plan:
        for line in report.plan:
            console.print(f"  - {escape(line)}")
    record = report.deployment
    if record is not None and report.action in (
        "status",
        "not-running",
        "deployed",
        "unchanged",
        "restored",
        "rolled_back",
    ):
        rows = [
            ("target", record.target),
            ("url", record.url),
            ("status", record.status),
            ("pid", record.pid),
            (
                "container",
                record.container_name and f"{record.container_name} ({(record.container_id or '')[:12]})",
            ),
            ("image", record.image),
            ("unit", record.unit_path),
            ("ports", ", ".join(f"{k} {v}" for k, v in record.ports.items())),
            ("version", record.version),
            ("config", f"{record.config_hash[:16]} ({record.config_path})"),
            ("model", record.model),
            ("weights", record.weights_revision),
            ("log", record.log_path if record.target == "local" else None),
        ]
        # One line per field, never hard-wrapped: paths, ids and URLs are copied whole.
        for key, value in rows:
            if value not in (None, ""):
                console.print(f"[dim]{key:<9}[/]{escape(str(value))}", soft_wrap=True, highlight=False)
    if report.monitoring:
        where = Path(report.monitoring[0]).parent
        console.print(
            f"[dim]monitoring kit written to {escape(str(where))}: prometheus.yml, rules, grafana[/]"
        )
    if report.removed:
        removed = escape(", ".join(report.removed))
        console.print(f"[dim]removed {len(report.removed)} old image tag(s) no container uses: {removed}[/]")
    if report.health is not None and (report.exit_code or report.action == "rolled_back"):
        console.print(health_table(report.health, title="health of the new deployment"))
    if report.logs and report.exit_code:
        whose = "" if report.action == "not-running" else " of the failed deployment"
        console.print(f"[dim]last log lines{whose}:[/]")
        console.print(escape(report.logs), highlight=False)
