"""`autoglm serve`: the OpenAI-compatible gateway over the scheduler and the Dask workers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .context import start
from .options import ConfigOption, DryRunOption, JsonOption, QuietOption

HELP = "Run the OpenAI-compatible gateway and the scheduler over Dask workers"
EXAMPLES = (
    "autoglm serve --config examples/simulated.yaml --keys-file ./keys.json",
    "autoglm serve --config examples/simulated.yaml --dry-run",
)


def command(
    ctx: typer.Context,
    config: ConfigOption = None,
    host: Annotated[
        Optional[str], typer.Option("--host", help="Address to listen on (gateway.host).")
    ] = None,
    port: Annotated[
        Optional[int],
        typer.Option("--port", "-p", min=0, max=65535, help="Port (gateway.port; 0: any free)."),
    ] = None,
    keys_file: Annotated[
        Optional[Path],
        typer.Option(
            "--keys-file", help="API keys file (default: $AUTOGLM_KEYS_FILE, else gateway.keys_file)."
        ),
    ] = None,
    dask_scheduler: Annotated[
        Optional[str],
        typer.Option(
            "--dask-scheduler", help="Use this Dask scheduler (tcp://HOST:8786) instead of starting one."
        ),
    ] = None,
    workers: Annotated[
        Optional[int], typer.Option("--workers", min=0, help="Worker processes (workers.count).")
    ] = None,
    log_file: Annotated[
        Optional[Path],
        typer.Option(
            "--log-file",
            metavar="FILE",
            help="Log here instead of stderr, rotated at log_max_bytes (log_file).",
        ),
    ] = None,
    dry_run: DryRunOption = False,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "serve", json=json, quiet=quiet, config_path=config)
    from ..config import with_overrides
    from ..runtime import server
    from ..runtime.auth import resolve_keys_file

    cfg = with_overrides(
        run.config,
        {
            "gateway.host": host,
            "gateway.port": port,
            "workers.scheduler_address": dask_scheduler or None,
            "workers.count": workers,
            "log_file": str(log_file) if log_file else None,
        },
    )
    keys_path = resolve_keys_file(keys_file, cfg) if cfg.gateway.auth else None
    the_plan = server.plan(cfg, keys_file=keys_path, warn=run.out.warn)
    if dry_run:
        return run.out.result(the_plan, human=lambda console: _render_plan(console, the_plan))
    report = server.serve(cfg, keys_file=keys_path, warn=run.out.warn, note=run.out.note)
    return run.out.result(
        report,
        human=lambda console: console.print(f"served {report.requests} requests in {report.uptime_s:.0f} s"),
    )


def _render_plan(console, plan) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("url", plan.url)
    models = ", ".join(f"{name} ({backend})" for name, backend in plan.models.items())
    table.add_row("models", models)
    table.add_row("default / backup", f"{plan.default_model} / {plan.backup_model or '-'}")
    table.add_row("scheduler", plan.scheduler)
    where = plan.dask_scheduler or ("embedded LocalCluster" if plan.engine == "dask" else plan.engine)
    table.add_row("workers", f"{plan.workers} ({where})")
    table.add_row("auth", f"on, {plan.keys} key(s) in {plan.keys_file}" if plan.auth else "OFF")
    table.add_row("log level", plan.log_level)
    console.print(table)
