"""`autoglm health`: probe a deployment (state file, --url or --container); table, JSON, --watch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..errors import UsageError
from .context import start
from .options import ConfigOption, JsonOption, QuietOption, StateDirOption
from .output import Mode, escape_markup

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from ..ops.health import HealthReport

HELP = "Check a deployment: liveness, readiness, workers, a real tiny inference, metrics, GPU, disk."
EXAMPLES = (
    "autoglm health --config examples/local.yaml",
    "autoglm health --config examples/local.yaml --watch --interval 5",
    "autoglm health --url http://127.0.0.1:8000 --json",
)

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def health_table(report: HealthReport, *, title: str | None = None) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("required")
    table.add_column("latency", justify="right")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        status = check.status.value
        table.add_row(
            check.name,
            f"[{_STYLE[status]}]{status}[/]",
            "yes" if check.required else "",
            f"{check.latency_ms:.0f} ms" if check.latency_ms else "",
            escape_markup(check.detail),
        )
    return table


def render_health(console: Console, report: HealthReport) -> None:
    console.print(health_table(report, title=f"{report.url} ({report.source})"))
    style = "green" if report.ok else "bold red"
    console.print(f"[{style}]{report.summary()}[/]")


def command(
    ctx: typer.Context,
    url: Annotated[
        Optional[str],
        typer.Option("--url", help="Probe the gateway at this base URL instead of the state file's."),
    ] = None,
    container: Annotated[
        Optional[str], typer.Option("--container", help="Probe the autoglm container with this name.")
    ] = None,
    state_dir: StateDirOption = None,
    api_key: Annotated[
        Optional[str],
        typer.Option(
            "--api-key",
            envvar="AUTOGLM_API_KEY",
            show_envvar=True,
            help="API key for the inference probe (default: the key deploy keeps in the state dir).",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds each probe may take.")] = 10.0,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh in place until Ctrl-C.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, help="Seconds between --watch refreshes.")
    ] = 2.0,
    config: ConfigOption = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "health", json=json, quiet=quiet, config_path=config)
    from ..ops.deploy.health_target import resolve_target
    from ..ops.health import check_health

    target = resolve_target(run.config, url=url, container=container, state_dir=state_dir, api_key=api_key)
    if watch:
        if run.out.is_json:
            raise UsageError("--watch shows a live table; use --json without --watch for one document")
        return _watch(run, target, timeout, interval)
    report = check_health(target, timeout=timeout)
    return run.out.result(
        report, exit_code=report.exit_code, human=lambda console: render_health(console, report)
    )


def without_departed(report: HealthReport, dead_before: set[str]) -> tuple[HealthReport, set[str]]:
    """Drop nodes that left the cluster: a dead node is shown in one refresh, then no more.

    Returns the report to show and the dead nodes seen now (the next call's `dead_before`).
    """
    import dataclasses

    dead_now = {c.name for c in report.checks if c.name.startswith("node:") and c.data.get("state") == "dead"}
    kept = tuple(c for c in report.checks if c.name not in (dead_now & dead_before))
    return dataclasses.replace(report, checks=kept), dead_now


def _watch(run, target, timeout: float, interval: float) -> int:
    import threading
    import time

    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    from ..ops.health import check_health
    from ..units import duration_text

    report = check_health(target, timeout=timeout)
    if run.out.mode is Mode.QUIET:
        # Nothing to show: poll until something required fails.
        while report.ok:
            time.sleep(interval)
            report = check_health(target, timeout=timeout)
        return int(report.exit_code)

    shown, dead = without_departed(report, set())
    stamp = time.strftime("%H:%M:%S")

    def view(rep: HealthReport, probing_since: float | None = None):
        style = "green" if rep.ok else "bold red"
        if probing_since is not None:
            # A probe can take up to --timeout (a dead worker): say so instead of looking frozen.
            waited = duration_text(time.monotonic() - probing_since)
            state = f"[cyan]probing... {waited}[/] [dim](table from {stamp})[/]"
        else:
            state = f"[dim]{stamp}, every {interval:g} s; Ctrl-C to stop[/]"
        footer = Text.from_markup(f"[{style}]{rep.summary()}[/]  {state}")
        return Group(health_table(rep, title=f"{rep.url} ({rep.source})"), footer)

    try:
        with Live(view(shown), console=run.out.stdout, auto_refresh=False, transient=False) as live:
            while True:
                time.sleep(interval)
                result: list[HealthReport] = []
                probe = threading.Thread(
                    target=lambda out=result: out.append(check_health(target, timeout=timeout)), daemon=True
                )
                began = time.monotonic()
                probe.start()
                while probe.is_alive():
                    live.update(view(shown, probing_since=began), refresh=True)
                    probe.join(0.5)
                report = result[0] if result else report
                shown, dead = without_departed(report, dead)
                stamp = time.strftime("%H:%M:%S")
                live.update(view(shown), refresh=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends; the exit code is the last report's
    return int(report.exit_code)
