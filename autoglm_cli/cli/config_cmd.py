"""`autoglm config show` / `autoglm config validate`: the effective config, and whether it loads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from .context import start
from .options import ConfigOption, JsonOption, QuietOption, typer_app

HELP = "Show the effective configuration and where each value came from, or validate it"
EXAMPLES = (
    "autoglm config show --config examples/local.yaml",
    "AUTOGLM_WORKERS__COUNT=4 autoglm config show --set gateway.port=9000",
    "autoglm config validate --config examples/docker.yaml --strict",
)

app = typer_app(help=HELP, no_args_is_help=True)

SetOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override one field as a command-line option would (repeat), e.g. --set gateway.port=9000.",
    ),
]
StrictOption = Annotated[bool, typer.Option("--strict", help="Fail (exit 1) on warnings (unknown keys).")]


def _path(ctx: typer.Context, option: Path | None) -> Path | None:
    """`config show --config X` or `autoglm --config X config show`."""
    return option or getattr(ctx.obj, "config_path", None)


def _settings(pairs: list[str] | None) -> dict[str, str]:
    settings = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set gateway.port=9000")
        settings[key.strip()] = value
    return settings


@app.command(
    "show",
    help="Print every config field's effective value and its source: default, FILE:LINE, "
    "env AUTOGLM_..., or flag. Secrets in URLs are masked.",
)
def show(
    ctx: typer.Context,
    config: ConfigOption = None,
    set_: SetOption = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "config show", json=json, quiet=quiet, config_path=config)
    from ..config_explain import explain_config

    report = explain_config(_path(ctx, config), settings=_settings(set_))
    for warning in report.warnings:
        run.out.warn(warning)
    return run.out.result(report, human=lambda console: _render(console, report))


@app.command(
    "validate",
    help="Load the config as every command does: exit 0 when it is valid (warnings printed), "
    "2 with the file, line and field when it is not.",
)
def validate(
    ctx: typer.Context,
    config: ConfigOption = None,
    set_: SetOption = None,
    strict: StrictOption = False,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "config validate", json=json, quiet=quiet, config_path=config)
    from ..config_explain import validate_config

    report = validate_config(_path(ctx, config), settings=_settings(set_), strict=strict)
    for warning in report.warnings:
        run.out.warn(warning)
    where = report.file or "no config file (built-in defaults)"
    verdict = f"{where}: valid" + (f", {len(report.warnings)} warning(s)" if report.warnings else "")
    return run.out.result(
        report, exit_code=report.exit_code, human=lambda console: console.print(verdict, markup=False)
    )


def _render(console, report) -> None:
    from rich.table import Table
    from rich.text import Text

    title = f"config file: {report.file}" if report.file else "no config file: built-in defaults"
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", overflow="fold")
    for item in report.values:
        style = "dim" if item.source == "default" else ""
        table.add_row(
            Text(item.key), Text(_text(item.value)), Text(_source(item.source, report), style=style)
        )
    console.print(table)


def _source(source: str, report) -> str:
    """`FILE:LINE` as `line N` (the title names the file): the value keeps its width."""
    if report.file and source.startswith(f"{report.file}:"):
        return "line " + source[len(report.file) + 1 :]
    return source


def _text(value) -> str:
    import json

    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)
