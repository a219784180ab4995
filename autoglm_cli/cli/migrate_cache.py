"""`autoglm migrate-cache`: Move caches to a new layout from a mapping table, journaled and resumable (not built yet: issue #5)."""

from __future__ import annotations

import typer

from ._pending import PENDING_SETTINGS, not_built
from .context import start
from .options import JsonOption, QuietOption

HELP = "Move caches to a new layout from a mapping table, journaled and resumable [not built yet: issue #5]"
CONTEXT_SETTINGS = PENDING_SETTINGS


def command(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "migrate-cache", json=json, quiet=quiet)
    raise not_built("migrate-cache", 5)
