"""The `autoglm` command: registers the subcommands and maps errors to exit codes.

This module only wires things together. Each subcommand lives in its own module
(`cli/<command>.py`) that parses options, calls one library function in `ops/`,
and renders the report; `main()` below is the one place where errors become
messages and exit codes.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from .. import __version__
from ..errors import EXIT_CODE_HELP, AutoglmError, EnvironmentFailure, ExitCode, UsageError
from . import (
    bench,
    clone,
    deploy,
    env_check,
    fetch_weights,
    health,
    keys,
    logs,
    migrate_cache,
    redeploy,
    rollback,
    serve,
    verify,
    worker,
)
from . import output as output_mod
from .context import GlobalOptions
from .options import ConfigOption, JsonOption, QuietOption, VerboseOption, typer_app
from .output import Mode, Output

# "\b" keeps click from re-wrapping the table.
_EXIT_CODES = "\b\nExit codes:\n" + "\n".join(f"  {int(c):>3}  {text}" for c, text in EXIT_CODE_HELP.items())

app = typer_app(
    name="autoglm",
    help=(
        "Redeploy and operate GLM-family LLM services after their code or weights moved.\n\n"
        "Brings a deployment back with one command (`autoglm redeploy`), and runs the "
        "service itself: an OpenAI-compatible gateway over a scheduler and Dask workers."
    ),
    epilog=_EXIT_CODES,
    no_args_is_help=True,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"autoglm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    config: ConfigOption = None,
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    ctx.obj = GlobalOptions(json=json, quiet=quiet, verbose=verbose, config_path=config)


# Each subcommand is registered as a trampoline that builds the real command only
# when it runs: typer inspects every parameter of every command it builds, and
# doing that for all of them made `autoglm --help` miss its start-up budget.
_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def _subcommand_app(module, name: str) -> typer.Typer:
    if isinstance(getattr(module, "app", None), typer.Typer):
        return module.app  # a command group (`keys create|list|revoke`)
    single = typer_app()
    single.command(name, help=module.HELP)(module.command)
    return single


def _register(module, name: str) -> None:
    def trampoline(ctx: typer.Context) -> int:
        sub = _subcommand_app(module, name)
        return sub(args=ctx.args, prog_name=f"autoglm {name}", standalone_mode=False, obj=ctx.obj)

    trampoline.__name__ = name.replace("-", "_")
    app.command(name, help=module.HELP, context_settings=_PASS_THROUGH, add_help_option=False)(trampoline)


_register(clone, "clone")
_register(env_check, "env-check")
_register(fetch_weights, "fetch-weights")
_register(verify, "verify-sha256")
_register(verify, "verify")
_register(migrate_cache, "migrate-cache")
_register(deploy, "deploy")
_register(health, "health")
_register(redeploy, "redeploy")
_register(rollback, "rollback")
_register(logs, "logs")
_register(serve, "serve")
_register(worker, "worker")
_register(keys, "keys")
_register(bench, "bench")


def _fallback_output(argv: list[str]) -> Output:
    """The output for errors raised before a command made its own (e.g. bad options)."""
    current = output_mod.active()
    if current is not None:
        return current
    if "--json" in argv:
        return Output(Mode.JSON)
    if "--quiet" in argv or "-q" in argv:
        return Output(Mode.QUIET)
    return Output(Mode.HUMAN)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the table in `autoglm --help`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("AUTOGLM_DEBUG") == "1"
    output_mod.activate(None)
    try:
        result = app(args=args, prog_name="autoglm", standalone_mode=False)
    except AutoglmError as err:
        if debug:
            raise
        return _fallback_output(args).error(err)
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        out = _fallback_output(args)
        if out.is_json:
            return out.error(UsageError(exc.format_message()))
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("interrupted\n")
        return ExitCode.INTERRUPTED
    except OSError as exc:
        # An I/O failure no layer below anticipated: say what failed, not a traceback.
        if debug:
            raise
        return _fallback_output(args).error(EnvironmentFailure(str(exc)))
    return int(result) if isinstance(result, int) else ExitCode.OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
