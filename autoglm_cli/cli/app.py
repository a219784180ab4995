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
from ..errors import (
    EXIT_CODE_HELP,
    AutoglmError,
    EnvironmentFailure,
    ExitCode,
    InternalError,
    UsageError,
    describe,
)
from . import output as output_mod
from ._coerce import use_plain_coercion
from .context import GlobalOptions
from .lazy import AutoglmGroup, LazyCommand
from .options import ConfigOption, JsonOption, QuietOption, VerboseOption, typer_app
from .output import Mode, Output

# Every subcommand: its name -> its module under autoglm_cli/cli/ (see cli/lazy.py for
# what a module exports). Registering a command is one line here; nothing is imported
# until the command is chosen, so `autoglm --help` stays fast.
COMMANDS: dict[str, str] = {
    "clone": "clone",
    "env-check": "env_check",
    "config": "config_cmd",
    "fetch-weights": "fetch_weights",
    "verify-sha256": "verify",
    "verify": "verify",
    "migrate-cache": "migrate_cache",
    "deploy": "deploy",
    "rollback": "rollback",
    "health": "health",
    "logs": "logs",
    "redeploy": "redeploy",
    "serve": "serve",
    "worker": "worker",
    "keys": "keys",
    "bench": "bench",
}

# The one-line help of a command whose module's HELP does not fit (an alias).
_HELP_OVERRIDES = {"verify": "The same command as verify-sha256, by a shorter name"}

# "\b" keeps click from re-wrapping the table.
_EXIT_CODES = "\b\nExit codes:\n" + "\n".join(f"  {int(c):>3}  {text}" for c, text in EXIT_CODE_HELP.items())
_EXAMPLES = (
    "\b\nExamples:\n"
    "  autoglm redeploy --config examples/local.yaml\n"
    "  autoglm health --config examples/local.yaml\n"
    "  autoglm env-check --only ports --json\n"
    "  autoglm COMMAND --help            # every command's options and examples\n"
    "  autoglm --install-completion bash  # or zsh, fish"
)

app = typer_app(
    name="autoglm",
    cls=AutoglmGroup,
    help=(
        "Redeploy and operate GLM-family LLM services after their code or weights moved.\n\n"
        "Brings a deployment back with one command (`autoglm redeploy`), and runs the "
        "service itself: an OpenAI-compatible gateway over a scheduler and Dask workers. "
        "The global options below are accepted before or after any command."
    ),
    epilog=_EXIT_CODES + "\n\n" + _EXAMPLES,
    no_args_is_help=True,
)

_SHELLS = ("bash", "zsh", "fish")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"autoglm {__version__}")
        raise typer.Exit()


def _completion(install: bool):
    def callback(ctx: typer.Context, value: Optional[str]) -> None:
        if not value or ctx.resilient_parsing:
            return
        if value not in _SHELLS:
            raise UsageError(f"no completion for shell {value!r}; choose one of {', '.join(_SHELLS)}")
        from typer import _completion_shared as completion

        if install:
            _shell, path = completion.install(shell=value, prog_name="autoglm", complete_var=_COMPLETE_VAR)
            typer.echo(f"{value} completion installed in {path}; it takes effect in a new shell", err=True)
        else:
            typer.echo(
                completion.get_completion_script(prog_name="autoglm", complete_var=_COMPLETE_VAR, shell=value)
            )
        raise typer.Exit()

    return callback


_COMPLETE_VAR = "_AUTOGLM_COMPLETE"


@app.callback()
def root(
    ctx: typer.Context,
    json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    config: ConfigOption = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours (as NO_COLOR=1 does).")] = False,
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    install_completion: Annotated[
        Optional[str],
        typer.Option(
            "--install-completion",
            metavar="SHELL",
            callback=_completion(install=True),
            is_eager=True,
            expose_value=False,
            help="Install tab completion for bash, zsh or fish, and exit.",
        ),
    ] = None,
    show_completion: Annotated[
        Optional[str],
        typer.Option(
            "--show-completion",
            metavar="SHELL",
            callback=_completion(install=False),
            is_eager=True,
            expose_value=False,
            help="Print the completion script for bash, zsh or fish, and exit.",
        ),
    ] = None,
) -> None:
    if no_color:
        os.environ["NO_COLOR"] = "1"
    ctx.obj = GlobalOptions(json=json, quiet=quiet, verbose=verbose, config_path=config, no_color=no_color)


cli = typer.main.get_command(app)
use_plain_coercion(cli)  # no pydantic import for plain option types (see _coerce.py)
for _name, _module in COMMANDS.items():
    cli.add_command(LazyCommand(_name, _module, help_text=_HELP_OVERRIDES.get(_name)))


def _fallback_output(argv: list[str]) -> Output:
    """The output for errors raised before a command made its own (e.g. bad options)."""
    current = output_mod.active()
    if current is not None:
        return current
    command = next((arg for arg in argv if arg in COMMANDS), "autoglm")
    if "--json" in argv:
        return Output(Mode.JSON, command=command)
    if "--quiet" in argv or "-q" in argv:
        return Output(Mode.QUIET, command=command)
    return Output(Mode.HUMAN, command=command)


def _print_traceback(exc: BaseException) -> None:
    """AUTOGLM_DEBUG=1: the traceback on stderr, redacted like every other output."""
    import traceback

    from ..redact import redact

    sys.stderr.write(redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))))
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the table in `autoglm --help`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("AUTOGLM_DEBUG") == "1"
    output_mod.activate(None)
    if _COMPLETE_VAR in os.environ:  # a shell asking for completions: typer answers and exits
        from typer.completion import completion_init

        completion_init()
    try:
        result = cli.main(args=args, prog_name="autoglm", standalone_mode=False)
    except AutoglmError as err:
        if debug:
            _print_traceback(err)
        return _fallback_output(args).error(err)
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        out = _fallback_output(args)
        if out.is_json:
            return out.error(UsageError(exc.format_message()))
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        return _fallback_output(args).error(output_mod.interruption())
    except OSError as exc:
        # An I/O failure no layer below anticipated: say what failed, not a traceback.
        if debug:
            _print_traceback(exc)
        return _fallback_output(args).error(EnvironmentFailure(describe(exc)))
    except Exception as exc:  # a bug: one line, exit 70; the traceback only on request
        if debug:
            _print_traceback(exc)
        return _fallback_output(args).error(InternalError.from_exception(exc))
    return int(result) if isinstance(result, int) else ExitCode.OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
