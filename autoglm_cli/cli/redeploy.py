"""`autoglm redeploy`: the whole pipeline from one config, resumable, with a summary table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .context import start
from .deploy import interrupt_says_what_runs
from .options import (
    ConfigOption,
    DryRunOption,
    ForceOption,
    JsonOption,
    QuietOption,
    StateDirOption,
    TargetOption,
)
from .output import duration_text

if TYPE_CHECKING:
    from rich.console import Console

    from ..ops.redeploy import RedeployReport

# Written out, not built from ops.redeploy.STEPS: importing ops here would slow `autoglm --help`;
# tests/cli/test_redeploy.py keeps the two the same.
_STEPS_HELP = "clone, env-check, migrate-cache, fetch-weights, verify, deploy, health"
HELP = f"{_STEPS_HELP} in one resumable run."
EXAMPLES = (
    "autoglm redeploy --config examples/local.yaml",
    "autoglm redeploy --config examples/local.yaml --dry-run",
    "autoglm redeploy --only fetch-weights --only verify",
)

_STYLE = {"ok": "green", "earlier": "green", "skipped": "dim", "failed": "bold red", "planned": "cyan"}


def command(
    ctx: typer.Context,
    from_step: Annotated[
        Optional[str], typer.Option("--from-step", help=f"Start at this step ({_STEPS_HELP}).")
    ] = None,
    only: Annotated[
        Optional[list[str]], typer.Option("--only", help="Run only this step (repeatable).")
    ] = None,
    target: TargetOption = None,
    force: ForceOption = False,
    state_dir: StateDirOption = None,
    dry_run: DryRunOption = False,
    config: ConfigOption = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "redeploy", json=json, quiet=quiet, config_path=config)
    from ..ops.redeploy import redeploy

    with run.out.progress() as progress, interrupt_says_what_runs(run, state_dir):
        report = redeploy(
            run.config,
            from_step=from_step,
            only=only or (),
            dry_run=dry_run,
            target=target.value if target else None,
            state_dir=state_dir,
            force=force,
            progress=progress,
        )
    if report.resumed_from:
        run.out.note(f"resuming at {report.resumed_from}: the previous run of this config stopped there")
    return run.out.result(report, exit_code=report.exit_code, human=lambda console: render(console, report))


def render(console: Console, report: RedeployReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title="redeploy" + (" (dry run)" if report.dry_run else ""),
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("step")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("detail", overflow="fold")
    for step in report.steps:
        style = _STYLE.get(step.status, "dim")
        table.add_row(
            step.name,
            f"[{style}]{step.status}[/]",
            duration_text(step.duration_s)
            if step.status not in ("planned", "skipped") and step.duration_s
            else "",
            escape(step.detail),
        )
    console.print(table)
    failed = report.failed
    if report.dry_run:
        unplanned = [s.name for s in report.steps if s.status == "failed"]
        note = f"; cannot plan: {', '.join(unplanned)}" if unplanned else ""
        console.print(f"dry run: nothing changed{note}")
    elif failed is not None:
        for line in failed.data.get("health", []):
            console.print(f"  {escape(line)}")
        if failed.data.get("logs"):
            console.print("[dim]last log lines of the failed deployment:[/]")
            console.print(escape(failed.data["logs"]), highlight=False)
        verb = "rolled back" if report.rolled_back else "stopped"
        console.print(
            f"[bold red]{failed.name} failed[/]; {verb}. Fix it and rerun: the next run resumes at "
            f"{failed.name}."
        )
    elif any(s.status == "not selected" for s in report.steps):
        ran = ", ".join(s.name for s in report.steps if s.status not in ("not selected", "earlier"))
        console.print(f"[green]done[/]: {ran} in {duration_text(report.duration_s)}")
    else:
        where = f" at {report.deployment.url}" if report.deployment else ""
        console.print(f"[green]redeployed{where}[/] in {duration_text(report.duration_s)}")
