"""`autoglm serve`: Run the OpenAI-compatible gateway and the scheduler over Dask workers (not built yet: issue #6)."""

from __future__ import annotations

import typer

from ._pending import PENDING_SETTINGS, not_built
from .context import start
from .options import JsonOption, QuietOption

HELP = "Run the OpenAI-compatible gateway and the scheduler over Dask workers [not built yet: issue #6]"
CONTEXT_SETTINGS = PENDING_SETTINGS


def command(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "serve", json=json, quiet=quiet)
    raise not_built("serve", 6)
