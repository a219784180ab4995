"""`autoglm clone`: Clone a repository, or re-point a checkout after the repository moved (not built yet: issue #3)."""

from __future__ import annotations

import typer

from ._pending import PENDING_SETTINGS, not_built
from .context import start
from .options import JsonOption, QuietOption

HELP = "Clone a repository, or re-point a checkout after the repository moved [not built yet: issue #3]"
CONTEXT_SETTINGS = PENDING_SETTINGS


def command(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "clone", json=json, quiet=quiet)
    raise not_built("clone", 3)
