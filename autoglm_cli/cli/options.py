"""Options shared by several commands, declared once as `Annotated` aliases."""

from __future__ import annotations

import copy
import enum
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one versioned JSON document on stdout (no colours, no progress)."),
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print nothing but errors; rely on the exit code.")
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Print debugging notes on stderr.")]
ConfigOption = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        "-c",
        metavar="FILE",
        help="Config file (default: $AUTOGLM_CONFIG, else ./autoglm.yaml when present).",
        show_default=False,
    ),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show the plan and change nothing.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")]
JobsOption = Annotated[
    Optional[int], typer.Option("--jobs", "-j", min=1, help="Parallel workers (default: one per CPU core).")
]


StateDirOption = Annotated[
    Optional[Path],
    typer.Option(
        "--state-dir", help="The deployment's state directory (default: deploy.state_dir, else ./.autoglm)."
    ),
]


class TargetChoice(str, enum.Enum):
    local = "local"
    docker = "docker"
    systemd = "systemd"


TargetOption = Annotated[
    Optional[TargetChoice],
    typer.Option("--target", help="Where to run the service (default: deploy.target, else local)."),
]


ForceOption = Annotated[bool, typer.Option("--force", help="Redeploy even when the running one is current.")]


def typer_app(**kwargs) -> typer.Typer:
    """A Typer with the project's settings: plain click help, -h/--help, our errors.

    Completion is the root's (`autoglm --install-completion SHELL`), not each command's."""
    return typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
        **kwargs,
    )


# -- global options: accepted before or after every subcommand -------------------------


def _store_global(field: str):
    """Record a global option given after the subcommand in the run's `GlobalOptions`."""

    def callback(ctx: typer.Context, value):
        if value in (None, False) or ctx.resilient_parsing:
            return value
        from .context import GlobalOptions

        setattr(ctx.ensure_object(GlobalOptions), field, Path(value) if field == "config_path" else value)
        if field == "no_color":
            os.environ["NO_COLOR"] = "1"  # rich reads it; so do the processes we start
        return value

    return callback


def _global_params() -> list:
    """Fresh click parameters for the global options (typer builds them, as for every option)."""

    def options(
        config: Annotated[
            Optional[Path],
            typer.Option(
                "--config",
                "-c",
                metavar="FILE",
                help="Config file (default: $AUTOGLM_CONFIG, else ./autoglm.yaml).",
                callback=_store_global("config_path"),
                expose_value=False,
                show_default=False,
            ),
        ] = None,
        json: Annotated[
            bool,
            typer.Option(
                "--json",
                help="Print one JSON document on stdout.",
                callback=_store_global("json"),
                expose_value=False,
            ),
        ] = False,
        quiet: Annotated[
            bool,
            typer.Option(
                "--quiet",
                "-q",
                help="Print nothing but errors.",
                callback=_store_global("quiet"),
                expose_value=False,
            ),
        ] = False,
        verbose: Annotated[
            bool,
            typer.Option(
                "--verbose",
                "-v",
                help="Print debugging notes on stderr.",
                callback=_store_global("verbose"),
                expose_value=False,
            ),
        ] = False,
        no_color: Annotated[
            bool,
            typer.Option(
                "--no-color",
                help="No colours (as NO_COLOR=1).",
                callback=_store_global("no_color"),
                expose_value=False,
            ),
        ] = False,
    ) -> None:
        pass

    global _GLOBAL_PROTOTYPES
    if _GLOBAL_PROTOTYPES is None:  # built once per process: typer's build is the costly part
        holder = typer_app()
        holder.command()(options)
        _GLOBAL_PROTOTYPES = list(typer.main.get_command(holder).params)
    fresh = [copy.copy(param) for param in _GLOBAL_PROTOTYPES]
    for param in fresh:
        param.opts = list(param.opts)  # add_global_options may drop a short flag of one copy
    return fresh


_GLOBAL_PROTOTYPES: list | None = None


def add_global_options(command) -> None:
    """Give `command` (and a group's subcommands) every global option it does not declare itself.

    A command that declares one (`verify --quiet`, `serve --config`) keeps its own;
    the values given before the subcommand are in `ctx.obj` either way (`context.start`).
    """
    for sub in getattr(command, "commands", {}).values():
        add_global_options(sub)  # a group takes them too: `keys --json list`, `keys list --json`
    taken = {opt for param in command.params for opt in (*param.opts, *getattr(param, "secondary_opts", ()))}
    for param in _global_params():
        if param.opts[0] in taken:
            continue
        param.opts = [opt for opt in param.opts if opt not in taken]
        command.params.append(param)
