"""What every command starts from: the output mode and the config, resolved once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from . import output as output_mod
from .output import Mode, Output

if TYPE_CHECKING:
    from ..config import Config


@dataclass
class GlobalOptions:
    """The global options, given before or after the subcommand (`autoglm --json env-check`).

    Mutable on purpose: the root sets what came before the subcommand, the
    subcommand's copies of the options (`options.add_global_options`) add what came after.
    """

    json: bool = False
    quiet: bool = False
    verbose: bool = False
    config_path: Path | None = None
    no_color: bool = False


class Invocation:
    """One run of one command: its `Output` and, on first use, its `Config`."""

    def __init__(self, out: Output, options: GlobalOptions, config_path: Path | None = None) -> None:
        self.out = out
        self.options = options
        self._config_path = config_path or options.config_path

    @cached_property
    def config(self) -> Config:
        from ..config import load_config

        config = load_config(self._config_path)
        for warning in config.warnings:
            self.out.warn(warning)
        if config.source:
            self.out.debug(f"config: {config.source}")
        return config


def start(
    ctx: typer.Context,
    command: str,
    *,
    json: bool = False,
    quiet: bool = False,
    config_path: Path | None = None,
) -> Invocation:
    """Merge the global and the command's own flags; make the run's `Output` active."""
    options = ctx.find_object(GlobalOptions) or GlobalOptions()
    if json or options.json:
        mode = Mode.JSON
    elif quiet or options.quiet:
        mode = Mode.QUIET
    else:
        mode = Mode.HUMAN
    out = Output(mode, verbose=options.verbose, command=command)
    output_mod.activate(out)
    return Invocation(out, options, config_path)
