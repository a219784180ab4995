"""`autoglm deploy`: Launch the runtime locally, in Docker or as a systemd unit; health-gated, with rollback (not built yet: issue #8)."""

from __future__ import annotations

import typer

from ._pending import PENDING_SETTINGS, not_built
from .context import start
from .options import JsonOption, QuietOption

HELP = "Launch the runtime locally, in Docker or as a systemd unit; health-gated, with rollback [not built yet: issue #8]"
CONTEXT_SETTINGS = PENDING_SETTINGS


def command(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "deploy", json=json, quiet=quiet)
    raise not_built("deploy", 8)
