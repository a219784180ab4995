"""`autoglm env-check`: is this machine ready for the deployment? Binaries, packages, GPUs, disk,
memory, Docker, network and ports, each with a severity, a status and a remedy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .context import start
from .options import JsonOption, QuietOption
from .output import duration_text

if TYPE_CHECKING:
    from rich.console import Console

    from ..ops.envcheck import CheckPlan, EnvReport

HELP = "Check binaries, packages, GPUs, disk, memory, Docker, network and ports before a deploy"
EXAMPLES = (
    "autoglm env-check --config examples/local.yaml",
    "autoglm env-check --only binaries --only ports",
    "autoglm env-check --list-checks --json",
)

# Kept in step with ops.envcheck.CATEGORIES (a test checks it); spelled out here so
# `--help` does not import the checks.
_CATEGORY_HELP = "binaries, packages, accelerators, resources, docker, network, ports"


def command(
    ctx: typer.Context,
    only: Annotated[
        Optional[list[str]],
        typer.Option(
            "--only",
            metavar="CATEGORY",
            help=f"Run only this category of checks (repeatable): {_CATEGORY_HELP}.",
            show_default=False,
        ),
    ] = None,
    list_checks: Annotated[
        bool, typer.Option("--list-checks", help="List the checks the config asks for, without running them.")
    ] = False,
    timeout: Annotated[
        Optional[float],
        typer.Option(
            "--timeout",
            min=0.1,
            metavar="SECONDS",
            help="Per network probe (DNS + connect) and Docker ping; overrides env_check.timeout.",
            show_default=False,
        ),
    ] = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "env-check", json=json, quiet=quiet)
    from ..ops import envcheck  # lazy: keeps --help fast

    config = run.config
    if timeout is not None:
        from ..config import Duration, with_overrides

        config = with_overrides(config, {"env_check.timeout": Duration(timeout)})

    if list_checks:
        plan = envcheck.list_checks(config, only)
        return run.out.result(plan, human=lambda console: _render_plan(console, plan))

    with run.out.progress() as progress:
        report = envcheck.run_checks(config, only, progress=progress)
    return run.out.result(
        report, exit_code=report.exit_code, human=lambda console: _render_report(console, report)
    )


_STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def _render_report(console: Console, report: EnvReport) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    # One table so columns line up across categories; a category is a heading row,
    # a remedy a row of its own under its check, so "found" keeps the width.
    table = Table(box=box.SIMPLE_HEAD, show_header=True, header_style="bold", pad_edge=False, show_edge=False)
    table.add_column("check", overflow="fold", max_width=32)
    table.add_column("status")
    table.add_column("severity")
    table.add_column("found / remedy", overflow="fold", ratio=1)
    for category in report.categories:
        checks = [c for c in report.checks if c.category == category]
        if not checks:
            continue
        table.add_row(f"[bold]{category}[/]", "", "", "")
        for check in checks:
            style = _STATUS_STYLE[check.status.value]
            table.add_row(
                f"  {escape(check.name)}",
                f"[{style}]{check.status.value}[/]",
                check.severity.value,
                escape(check.value),
            )
            if check.remedy and check.status.value != "ok":
                table.add_row("", "", "", f"[dim]-> {escape(check.remedy)}[/]")
    console.print(table)
    console.print(_summary_line(report), highlight=False)


def _summary_line(report: EnvReport) -> str:
    s = report.summary
    counts = f"{s.total} checks: {s.ok} ok, {s.warn} warn, {s.fail} fail"
    if s.required_failed:
        verdict = f"[bold red]{s.required_failed} required check(s) failed[/]"
    elif s.warn:
        verdict = "[yellow]ready, with warnings[/]"
    else:
        verdict = "[green]ready[/]"
    return f"{counts} ({duration_text(report.elapsed_s)}) - {verdict}"


def _render_plan(console: Console, plan: CheckPlan) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_header=True, header_style="bold", pad_edge=False, show_edge=False)
    for column in ("category", "check", "severity", "what it checks"):
        table.add_column(column, overflow="fold")
    for check in plan.checks:
        table.add_row(check.category, escape(check.name), check.severity.value, escape(check.description))
    console.print(table)
    console.print(f"{len(plan.checks)} checks in {len(plan.categories)} categories", highlight=False)
