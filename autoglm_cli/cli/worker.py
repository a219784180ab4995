"""`autoglm worker`: Join this machine to a Dask cluster as a model worker (not built yet: issue #6)."""

from __future__ import annotations

import typer

from ._pending import PENDING_SETTINGS, not_built
from .context import start
from .options import JsonOption, QuietOption

HELP = "Join this machine to a Dask cluster as a model worker [not built yet: issue #6]"
CONTEXT_SETTINGS = PENDING_SETTINGS


def command(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "worker", json=json, quiet=quiet)
    raise not_built("worker", 6)
