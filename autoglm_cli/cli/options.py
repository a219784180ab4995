"""Options shared by several commands, declared once as `Annotated` aliases."""

from __future__ import annotations

import enum
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
    typer.Option("--target", "-t", help="Where to run the service (default: deploy.target, else local)."),
]


ForceOption = Annotated[bool, typer.Option("--force", help="Redeploy even when the running one is current.")]


def typer_app(**kwargs) -> typer.Typer:
    """A Typer with the project's settings: plain click help, -h/--help, no completion, our errors."""
    return typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
        **kwargs,
    )
