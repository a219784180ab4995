"""`autoglm fetch-weights`: Download model weights resumably, hashed while downloading, into the HF cache (not built yet: issue #4)."""

from __future__ import annotations

import typer

from ._pending import PENDING_SETTINGS, not_built
from .context import start
from .options import JsonOption, QuietOption

HELP = "Download model weights resumably, hashed while downloading, into the HF cache [not built yet: issue #4]"
CONTEXT_SETTINGS = PENDING_SETTINGS


def command(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "fetch-weights", json=json, quiet=quiet)
    raise not_built("fetch-weights", 4)
