"""`autoglm logs [-f]`: the deployment's log (local file, container logs or the unit's journal)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import UsageError
from .context import start
from .options import ConfigOption, JsonOption, QuietOption, StateDirOption

HELP = "Show (or follow with -f) the recorded deployment's log: local file, container or journal."
EXAMPLES = (
    "autoglm logs --config examples/local.yaml",
    "autoglm logs -f --lines 100 --state-dir /var/lib/autoglm",
)


def command(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", min=0, help="How many of the last lines to show.")] = 40,
    state_dir: StateDirOption = None,
    config: ConfigOption = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "logs", json=json, quiet=quiet, config_path=config)
    if follow and run.out.is_json:
        raise UsageError(
            "--follow prints lines as they come; it has no JSON form", remedy="Drop --json or -f."
        )
    from ..ops.deploy.logs import logs

    report = logs(run.config, state_dir=state_dir, lines=lines, follow=follow)
    run.out.note(f"{report.target} deployment {report.name}: {report.source}")
    if report.follow is not None:
        for line in report.follow:  # Ctrl-C ends it (exit 130)
            run.out.data(line)
        return 0
    if run.out.is_json:
        return run.out.result(report)
    if report.lines:
        run.out.data("\n".join(report.lines))  # the log is the data: `autoglm logs > service.log`
    else:
        run.out.note("(no log lines)")
    return 0
