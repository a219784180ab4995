"""`autoglm env-check`: Check binaries, packages, GPUs, disk, memory, Docker, network and ports (not built yet: issue #2)."""

from __future__ import annotations

import typer

from ._pending import PENDING_SETTINGS, not_built
from .context import start
from .options import JsonOption, QuietOption

HELP = "Check binaries, packages, GPUs, disk, memory, Docker, network and ports [not built yet: issue #2]"
CONTEXT_SETTINGS = PENDING_SETTINGS


def command(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "env-check", json=json, quiet=quiet)
    raise not_built("env-check", 2)
