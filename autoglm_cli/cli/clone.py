"""`autoglm clone`: clone a repository, or re-point a checkout after the repository moved."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..errors import UsageError
from .context import start
from .options import DryRunOption, JsonOption, QuietOption

if TYPE_CHECKING:
    from rich.console import Console

    from ..ops.repo import CloneReport

HELP = "Clone a repository, or re-point a checkout after the repository moved."
EXAMPLES = (
    "autoglm clone https://github.com/THUDM/GLM-4   # moves apply",
    "autoglm clone --repoint GLM-4 --dry-run        # the plan",
    "autoglm clone --repoint GLM-4",
)

_DRY_RUN_STATUS = {"cloned": "would clone", "repointed": "would re-point"}
_STYLE = {
    "cloned": "green",
    "repointed": "green",
    "unchanged": "",
    "hijacked": "bold red",
    "unrelated": "bold red",
    "unchecked": "yellow",
    "stale": "yellow",
}


def command(
    ctx: typer.Context,
    source: Annotated[
        Optional[str],
        typer.Argument(
            metavar="URL",
            help="The repository to clone (the `moves` map applies). "
            "With --repoint or --to: the checkout, DIR.",
            show_default=False,
        ),
    ] = None,
    directory: Annotated[
        Optional[Path],
        typer.Argument(
            metavar="DIR",
            help="Where the checkout goes (default: the repository's name). An existing checkout is "
            "re-pointed to URL instead of cloned.",
            show_default=False,
        ),
    ] = None,
    branch: Annotated[
        Optional[str],
        typer.Option(
            "--branch", "-b", help="Branch to clone (alone: --single-branch). Default: the remote's."
        ),
    ] = None,
    depth: Annotated[
        Optional[int], typer.Option("--depth", min=1, help="Clone only the last N commits of the branch.")
    ] = None,
    repoint: Annotated[
        bool,
        typer.Option(
            "--repoint",
            help="Re-point the checkout DIR (default: the one around the working directory) through the "
            "config's `moves` map, after proving the new remote holds its history.",
        ),
    ] = False,
    to: Annotated[
        Optional[str],
        typer.Option(
            "--to", metavar="URL", help="Re-point the remote (--remote) to this URL (implies --repoint)."
        ),
    ] = None,
    remote: Annotated[str, typer.Option("--remote", help="The remote --to re-points.")] = "origin",
    dry_run: DryRunOption = False,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "clone", json=json, quiet=quiet)
    if repoint or to is not None:
        if directory is not None:
            raise UsageError(
                "with --repoint or --to, give only the checkout's directory",
                remedy="autoglm clone --repoint [DIR] [--to NEW_URL]",
            )
        directory, source = (Path(source) if source else None), None
    elif source is None:
        raise UsageError(
            "give a URL to clone, or --repoint [DIR] to re-point an existing checkout",
            remedy="autoglm clone URL [DIR]   or   autoglm clone --repoint [DIR]",
        )

    from ..ops.repo import CloneRequest, clone
    from ..retry import RetryPolicy

    config = run.config
    retry = RetryPolicy.from_settings(
        config.retry,
        on_retry=lambda a: run.out.note(
            f"{a.error}; retrying in {a.delay:.1f} s (attempt {a.attempt}/{a.tries})"
        ),
    )
    request = CloneRequest(
        url=source,
        directory=directory,
        branch=branch,
        depth=depth,
        repoint=repoint or to is not None,
        to=to,
        remote=remote,
        dry_run=dry_run,
    )
    with run.out.progress() as progress:
        report = clone(
            request,
            moves=config.moves,
            conventions=config.clone.branch_conventions,
            retry=retry,
            progress=progress,
        )
    for warning in report.warnings:
        run.out.warn(warning)
    return run.out.result(report, exit_code=report.exit_code, human=lambda console: _render(console, report))


def _render(console: Console, report: CloneReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    if report.dry_run:
        title = f"plan for {report.directory} (dry run: nothing changed)"
    elif report.action == "clone":
        title = f"cloned into {report.directory}"
    else:
        title = f"re-pointed {report.directory}" if report.changed else f"checked {report.directory}"
    table = Table(title=escape(title), title_justify="left", show_edge=False, pad_edge=False)
    for column in ("what", "old", "new", "status", "proof"):
        table.add_column(column, overflow="fold")
    for row in report.changes:
        status = _DRY_RUN_STATUS.get(row.status, row.status) if report.dry_run else row.status
        style = _STYLE.get(row.status, "")
        new = "(same)" if row.new == row.old else row.new
        table.add_row(
            escape(f"{row.kind} {row.name}"),
            escape(row.old),
            escape(new),
            f"[{style}]{escape(status)}[/]" if style else escape(status),
            escape(row.proof),
        )
    console.print(table)
    console.print(escape(_state_line(report)))
    if report.fetched:
        console.print(escape(f"fetched: {', '.join(report.fetched)}"))


def _state_line(report: CloneReport) -> str:
    where = f"branch {report.branch}" if report.branch else "detached HEAD"
    line = f"{where} at {(report.commit or 'no commit')[:10]}"
    if report.upstream:
        line += f", tracking {report.upstream}"
        if report.ahead is not None and report.behind is not None:
            line += f": {report.ahead} ahead, {report.behind} behind"
    return line
