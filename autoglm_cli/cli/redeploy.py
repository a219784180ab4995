"""`autoglm redeploy`: clone, env-check, migrate-cache, fetch-weights, verify, deploy, health in one resumable run (not built yet: issue #8)."""

from __future__ import annotations

import typer

from ._pending import PENDING_SETTINGS, not_built
from .context import start
from .options import JsonOption, QuietOption

HELP = "clone, env-check, migrate-cache, fetch-weights, verify, deploy, health in one resumable run [not built yet: issue #8]"
CONTEXT_SETTINGS = PENDING_SETTINGS


def command(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "redeploy", json=json, quiet=quiet)
    raise not_built("redeploy", 8)
