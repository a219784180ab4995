"""`autoglm rollback`: bring the previous recorded deployment back, health-gated (every target)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .context import start
from .deploy import render
from .options import ConfigOption, JsonOption, QuietOption, StateDirOption

HELP = "Run the previous recorded deployment again, health-gated; the current one drains and stops."
EXAMPLES = (
    "autoglm rollback --config examples/local.yaml",
    "autoglm rollback --state-dir /var/lib/autoglm --json",
)


def command(
    ctx: typer.Context,
    timeout: Annotated[
        Optional[float],
        typer.Option(
            "--timeout", min=1, help="Health gate budget in seconds (default: grows with the model size)."
        ),
    ] = None,
    state_dir: StateDirOption = None,
    config: ConfigOption = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "rollback", json=json, quiet=quiet, config_path=config)
    from ..ops.deploy.rollback import rollback

    with run.out.progress() as progress:
        report = rollback(run.config, state_dir=state_dir, timeout=timeout, progress=progress)
    return run.out.result(report, exit_code=report.exit_code, human=lambda console: render(console, report))
