"""`autoglm keys`: manage the gateway's API keys (not built yet: issue #6)."""

from __future__ import annotations

import typer

from ._pending import not_built
from .context import start
from .options import JsonOption, QuietOption

HELP = "Create, list and revoke API keys for the gateway [not built yet: issue #6]"

app = typer.Typer(help=HELP, no_args_is_help=True)


@app.command("create", help="Create a key and print it once [not built yet: issue #6]")
def create(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "keys create", json=json, quiet=quiet)
    raise not_built("keys create", 6)


@app.command("list", help="List keys (never the keys themselves) [not built yet: issue #6]")
def list_(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "keys list", json=json, quiet=quiet)
    raise not_built("keys list", 6)


@app.command("revoke", help="Revoke a key [not built yet: issue #6]")
def revoke(ctx: typer.Context, json: JsonOption = False, quiet: QuietOption = False) -> int:
    start(ctx, "keys revoke", json=json, quiet=quiet)
    raise not_built("keys revoke", 6)
