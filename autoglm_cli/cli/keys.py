"""`autoglm keys`: create, list and revoke the gateway's API keys.

The key is printed once, on stdout, when it is created; the keys file keeps only
its hash. The file is `--keys-file`, else `$AUTOGLM_KEYS_FILE`, else
`gateway.keys_file` from config, else `$XDG_CONFIG_HOME/autoglm/keys.json`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from .context import start
from .options import JsonOption, QuietOption, typer_app

HELP = "Create, list and revoke API keys for the gateway"
EXAMPLES = (
    "autoglm keys create --name ci --rate-limit 600 --keys-file ./keys.json",
    "autoglm keys list --keys-file ./keys.json",
    "autoglm keys revoke KEY_ID --keys-file ./keys.json",
)

app = typer_app(help=HELP, no_args_is_help=True)

KeysFileOption = Annotated[
    Optional[Path],
    typer.Option("--keys-file", help="Keys file (default: $AUTOGLM_KEYS_FILE, else gateway.keys_file)."),
]


@dataclass(frozen=True)
class KeyCreated:
    keys_file: str
    key: dict


@dataclass(frozen=True)
class KeyListing:
    keys_file: str
    keys: list[dict]


@dataclass(frozen=True)
class KeyRevoked:
    keys_file: str
    revoked: dict


def _keys_path(run, option: Path | None) -> Path:
    from ..runtime.auth import ENV_KEYS_FILE, resolve_keys_file

    # Read the config only when nothing more specific names the file.
    config = run.config if not option and not os.environ.get(ENV_KEYS_FILE) else None
    return resolve_keys_file(option, config)


@app.command("create", help="Create a key and print it once on stdout (only its hash is stored).")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", "-n", help="A label to recognise the key by.")] = "",
    model: Annotated[
        Optional[list[str]],
        typer.Option("--model", "-m", help="A model the key may use (repeat; default: all)."),
    ] = None,
    permission: Annotated[
        Optional[list[str]],
        typer.Option("--permission", help="model:read and/or model:infer (repeat; default: both)."),
    ] = None,
    rate_limit: Annotated[
        Optional[int], typer.Option("--rate-limit", min=1, help="Requests per minute (default: unlimited).")
    ] = None,
    keys_file: KeysFileOption = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "keys create", json=json, quiet=quiet)
    from ..runtime.auth import PERMISSIONS, KeyStore

    path = _keys_path(run, keys_file)
    record, key = KeyStore(path).create(
        name=name,
        models=tuple(model or ()),
        permissions=tuple(permission or PERMISSIONS),
        rate_limit=rate_limit,
    )
    run.out.note(f"created {record.id} in {path}; this is the only time the key is shown, store it now")
    report = KeyCreated(keys_file=str(path), key=record.public())
    return run.out.result(report, reveal={"api_key": key})


@app.command("list", help="List keys: ids, names, models, permissions, limits (never the keys).")
def list_(
    ctx: typer.Context, keys_file: KeysFileOption = None, json: JsonOption = False, quiet: QuietOption = False
) -> int:
    run = start(ctx, "keys list", json=json, quiet=quiet)
    from ..runtime.auth import KeyStore

    path = _keys_path(run, keys_file)
    records = KeyStore(path).list()
    report = KeyListing(keys_file=str(path), keys=[r.public() for r in records])
    return run.out.result(report, human=lambda console: _render_list(console, report))


def _render_list(console, report: KeyListing) -> None:
    if not report.keys:
        console.print(f"no keys in {report.keys_file}")
        return
    from rich.table import Table

    table = Table(title=report.keys_file, title_justify="left")
    # The id and the name are what `keys revoke` takes: never truncated nor wrapped.
    for column in ("id", "name"):  # what `keys revoke` takes
        width = max(len(column), *(len(key[column]) for key in report.keys))
        table.add_column(column, no_wrap=True, min_width=width)
    for column in ("models", "permissions", "rate limit", "created"):
        table.add_column(column, overflow="fold")
    for key in report.keys:
        table.add_row(
            key["id"],
            key["name"],
            ", ".join(key["models"]) or "all",
            ", ".join(key["permissions"]),
            f"{key['rate_limit']}/min" if key["rate_limit"] else "none",
            key["created"],
        )
    console.print(table)


@app.command(
    "revoke", help="Revoke a key by its id (as `keys list` shows it); the gateway drops it within a second."
)
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...), its name, or the key itself.")],
    keys_file: KeysFileOption = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "keys revoke", json=json, quiet=quiet)
    from ..runtime.auth import KeyStore

    path = _keys_path(run, keys_file)
    record = KeyStore(path).revoke(key_id)
    report = KeyRevoked(keys_file=str(path), revoked=record.public())
    return run.out.result(report, human=lambda console: console.print(f"revoked {record.id} ({path})"))
