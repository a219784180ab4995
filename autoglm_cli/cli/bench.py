"""`autoglm bench`: Replay a request trace against an OpenAI-compatible endpoint and report latency (not built yet: issue #7)."""

from __future__ import annotations

import typer

from ._pending import PENDING_SETTINGS, not_built
from .context import start
from .options import JsonOption, QuietOption

HELP = "Replay a request trace against an OpenAI-compatible endpoint and report latency [not built yet: issue #7]"
CONTEXT_SETTINGS = PENDING_SETTINGS


def command(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "bench", json=json, quiet=quiet)
    raise not_built("bench", 7)
