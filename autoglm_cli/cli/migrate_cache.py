"""`autoglm migrate-cache`: move caches to a new layout from a mapping table, journaled and resumable."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..errors import UsageError
from .context import start
from .options import DryRunOption, JsonOption, QuietOption, YesOption
from .output import size_text

if TYPE_CHECKING:
    from rich.console import Console

    from ..ops.cache.report import MigrationReport

HELP = "Move caches to a new layout from a mapping table, journaled and resumable"
EXAMPLES = (
    "autoglm migrate-cache --map 'THUDM/=zai-org/{name}'          # the plan",
    "autoglm migrate-cache --map 'THUDM/=zai-org/{name}' --yes    # apply",
    "autoglm migrate-cache --status",
)

MapOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--map",
        metavar="OLD=NEW",
        help="A mapping row: old prefix = new template ({name}, {id} or {rest}), "
        "e.g. 'THUDM/=zai-org/{name}'. Repeatable; replaces the config's cache_migrations.",
        show_default=False,
    ),
]


def command(
    ctx: typer.Context,
    map_: MapOption = None,
    kind: Annotated[
        Optional[str],
        typer.Option(
            "--kind",
            help="Kind of cache for --map rows: hf (hub cache + trust_remote_code modules) or dir "
            "(files under --root). Default: dir with --root, else hf.",
            show_default=False,
        ),
    ] = None,
    root: Annotated[
        Optional[Path], typer.Option("--root", file_okay=False, help="The directory cache of dir rows.")
    ] = None,
    to_root: Annotated[
        Optional[Path],
        typer.Option(
            "--to-root", file_okay=False, help="Migrate dir rows into this directory instead of --root."
        ),
    ] = None,
    hub_cache: Annotated[
        Optional[Path],
        typer.Option(
            "--hub-cache",
            file_okay=False,
            help="The hub cache (default: weights.cache_dir, else $HF_HUB_CACHE, else $HF_HOME/hub).",
            show_default=False,
        ),
    ] = None,
    to_hub_cache: Annotated[
        Optional[Path],
        typer.Option(
            "--to-hub-cache",
            file_okay=False,
            help="Migrate hub repos into this cache (e.g. on another disk).",
        ),
    ] = None,
    modules_cache: Annotated[
        Optional[Path],
        typer.Option(
            "--modules-cache",
            file_okay=False,
            help="The trust_remote_code module cache (default: $HF_MODULES_CACHE, else $HF_HOME/modules).",
            show_default=False,
        ),
    ] = None,
    journal: Annotated[
        Optional[Path],
        typer.Option(
            "--journal",
            dir_okay=False,
            help="The journal (default: $AUTOGLM_STATE_DIR or ~/.local/state/autoglm, migrate-cache.jsonl).",
            show_default=False,
        ),
    ] = None,
    copy: Annotated[
        bool, typer.Option("--copy", help="Copy and verify (sha256) instead of hard links and renames.")
    ] = False,
    prune_old: Annotated[
        bool,
        typer.Option(
            "--prune-old", help="Remove the old entries, once every new one verifies (hashes copies)."
        ),
    ] = False,
    show_status: Annotated[
        bool, typer.Option("--status", help="Show each row's status from the journal and exit.")
    ] = False,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    jobs: Annotated[
        Optional[int],
        typer.Option(
            "--jobs", "-j", min=1, help="Items moved in parallel (default: two per CPU core, at most 8)."
        ),
    ] = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "migrate-cache", json=json, quiet=quiet)
    from ..ops.cache import engine
    from ..ops.cache.journal import default_journal_path
    from ..ops.cache.locations import Locations
    from ..ops.cache.mapping import MappingTable, parse_map_option

    if kind is not None and kind not in ("hf", "dir"):
        raise UsageError(f"--kind {kind!r}: expected hf or dir")
    row_kind = kind or ("dir" if root else "hf")
    if map_:
        table = MappingTable.build(
            parse_map_option(m, kind=row_kind, root=str(root) if root else None) for m in map_
        )
    else:
        table = MappingTable.from_config(run.config.cache_migrations, root=str(root) if root else None)
    locations = Locations.resolve(
        hub_cache=hub_cache or run.config.weights.cache_dir,
        to_hub_cache=to_hub_cache,
        modules_cache=modules_cache,
        root=root,
        to_root=to_root,
    )
    journal_path = journal or default_journal_path()

    if show_status:
        report = engine.status(table, locations, journal_path=journal_path)
        return run.out.result(report, exit_code=report.exit_code, human=lambda c: _render_status(c, report))
    if not table.rows:
        raise UsageError(
            "no mapping rows: nothing to migrate",
            remedy="Pass --map 'THUDM/=zai-org/{name}' or add cache_migrations rows to the config.",
        )

    interactive = sys.stdin.isatty() and not run.out.is_json
    if dry_run or (not yes and not interactive):
        report = engine.migrate(table, locations, journal_path=journal_path, copy=copy, prune_old=prune_old)
        if not dry_run:
            run.out.note("Dry run (stdin is not a terminal and --yes is absent): nothing was changed.")
        return run.out.result(report, exit_code=report.exit_code, human=lambda c: _render_plan(c, report))
    if not yes:
        preview = engine.migrate(table, locations, journal_path=journal_path, copy=copy, prune_old=prune_old)
        _render_plan(run.out.stderr, preview, footer=False)
        if preview.problems:
            return int(preview.exit_code)
        if not any(e.todo for r in preview.rows for e in r.entries):
            run.out.note("Nothing to migrate; nothing changed.")  # no question without a choice
            return run.out.result(preview, exit_code=preview.exit_code)
        if not typer.confirm("Apply this migration?", default=False, err=True):
            run.out.note("Nothing changed.")
            return 0
    with run.out.progress(bytes_=True) as progress:
        report = engine.migrate(
            table,
            locations,
            journal_path=journal_path,
            apply=True,
            copy=copy,
            prune_old=prune_old,
            jobs=jobs,
            progress=progress,
        )
    for note in report.notes:
        run.out.warn(note)
    return run.out.result(report, exit_code=report.exit_code, human=lambda c: _render_applied(c, report))


# --- rendering ----------------------------------------------------------------


def _entries_table(row, *, applied: bool):
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False)
    for name in ("old", "new", "kind", "method"):
        table.add_column(name, overflow="fold")  # never cut a path or an id short
    table.add_column("items", justify="right", no_wrap=True)
    table.add_column("bytes", justify="right", no_wrap=True)
    if applied:
        table.add_column("status")
    for e in row.entries:
        items = f"{e.todo}/{e.items}" if 0 < e.todo < e.items else str(e.items)
        cells = [e.old, e.new, e.kind, e.method, items, size_text(e.todo_bytes if e.todo else e.bytes)]
        if applied:
            cells.append(e.status)
        table.add_row(*cells)
    return table


def _row_header(console: Console, row) -> None:
    from rich.markup import escape

    console.print(
        f"[bold]{escape(row.old)}[/] -> [bold]{escape(row.new)}[/]  {row.kind}  status: {row.status}"
    )
    console.print(f"  [dim]in {escape(row.location)}[/]")


def _render_rows(console: Console, report: MigrationReport, *, applied: bool) -> None:
    from rich.markup import escape

    for row in report.rows:
        _row_header(console, row)
        if row.entries:
            console.print(_entries_table(row, applied=applied))
        else:
            console.print("  [dim]no matching entries[/]")
        for problem in row.problems:
            console.print(f"  [red]refused:[/] {escape(problem.path)}: {escape(problem.message)}")
        for note in row.notes:
            console.print(f"  [dim]note: {escape(note)}[/]")
        if row.error:
            console.print(f"  [red]failed:[/] {escape(row.error)}")
        console.print()


def _render_plan(console: Console, report: MigrationReport, *, footer: bool = True) -> None:
    _render_rows(console, report, applied=False)
    entries = [e for r in report.rows for e in r.entries]
    todo = sum(1 for e in entries if e.todo)
    by_method: dict[str, int] = {}
    for e in entries:
        if e.todo:
            by_method[e.method] = by_method.get(e.method, 0) + e.todo_bytes
    moved = ", ".join(f"{size_text(b)} by {m}" for m, b in sorted(by_method.items())) or "nothing"
    console.print(f"Plan: {todo} of {len(entries)} entries to migrate ({moved}).")
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")
    if report.problems:
        console.print(f"[red]{len(report.problems)} problem(s): the migration would be refused.[/]")
    elif footer and todo:
        console.print("Nothing changed (plan only). Apply it with --yes.")


def _render_applied(console: Console, report: MigrationReport) -> None:
    _render_rows(console, report, applied=True)
    completed = sum(1 for r in report.rows if r.status == "completed")
    console.print(f"{completed} of {len(report.rows)} row(s) completed; journal: {report.journal}")
    if report.recovered_steps:
        console.print(f"Finished {report.recovered_steps} step(s) an interrupted run had started.")
    if report.pruned_entries:
        console.print(
            f"Removed {report.pruned_entries} old entr{'y' if report.pruned_entries == 1 else 'ies'}."
        )
    elif not report.prune_old and completed:
        console.print("The old names still resolve; remove them with --prune-old once nothing reads them.")
    for failure in report.verify_failures[:10]:
        console.print(f"[red]did not verify:[/] {failure}")


def _render_status(console: Console, report: MigrationReport) -> None:
    import datetime as dt

    from rich.table import Table

    if not report.rows:
        console.print(f"No mapping rows and no journal entries ({report.journal}).")
        return
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("old prefix", "new template", "kind", "status", "updated", "error"):
        table.add_column(column, overflow="fold")
    for row in report.rows:
        updated = dt.datetime.fromtimestamp(row.updated).strftime("%Y-%m-%d %H:%M:%S") if row.updated else ""
        table.add_row(row.old, row.new, row.kind, row.status, updated, row.error or "")
    console.print(table)
    console.print(f"[dim]journal: {report.journal}[/]")
