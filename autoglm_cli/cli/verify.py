"""`autoglm verify-sha256`: Verify files against a sha256sum manifest, or write one (not built yet: issue #2)."""

from __future__ import annotations

import typer

from ._pending import PENDING_SETTINGS, not_built
from .context import start
from .options import JsonOption, QuietOption

HELP = "Verify files against a sha256sum manifest, or write one [not built yet: issue #2]"
CONTEXT_SETTINGS = PENDING_SETTINGS


def command(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "verify-sha256", json=json, quiet=quiet)
    raise not_built("verify-sha256", 2)
