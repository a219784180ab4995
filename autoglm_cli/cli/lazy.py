"""Subcommands that import their module only when chosen, parsed once by click.

`autoglm --help` lists every command from its module's `HELP` string; building a
command (typer inspects every parameter) happens only for the one that runs, and
then click parses its arguments exactly once, so `--` and a command's
`CONTEXT_SETTINGS` behave as click documents (huggingface_hub's `hf` does the same).

A command module under `cli/` exports `HELP` (one line), and either `command` (a
function typer turns into a command) or `app` (a `typer.Typer` group such as
`keys`). Optional: `EXAMPLES` (lines of shell, shown under "Examples" in `--help`)
and `CONTEXT_SETTINGS` (click context settings, e.g. extra args for `worker`).
"""

from __future__ import annotations

import enum
import importlib
from typing import Any

import typer
from typer import _click  # typer vendors click; its Command/Context are these
from typer.core import TyperCommand, TyperGroup

from ._coerce import use_plain_coercion
from .options import add_global_options, typer_app

PACKAGE = "autoglm_cli.cli"


def examples_epilog(examples: list[str] | tuple[str, ...]) -> str:
    """An "Examples" help section; "\\b" keeps click from re-wrapping the lines."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in examples)


# Placeholders in words (`--timeout SECONDS`), never a Python type (`<list[str]>`).
_METAVARS = {
    "timeout": "SECONDS",
    "interval": "SECONDS",
    "duration": "SECONDS",
    "start_s": "SECONDS",
    "port": "PORT",
    "host": "HOST",
    "url": "URL",
    "endpoint": "URL",
    "metrics_url": "URL",
    "sha256_url": "URL",
    "scheduler": "URL",
    "dask_scheduler": "URL",
    "source": "URL",
    "revision": "REV",
    "include": "GLOB",
    "exclude": "GLOB",
    "memory_limit": "SIZE",
    "sha256": "HEX",
    "speedup": "FACTOR",
    "max_error_rate": "FRACTION",
    "api_key": "KEY",
    "key_id": "KEY_ID",
    "sources": "REPO_OR_URL",
}
_BY_TYPE = {int: "N", float: "NUMBER"}


def name_placeholders(command: _click.Command) -> None:
    """Give every option and argument without a metavar one in words."""
    import pathlib
    import typing

    for sub in getattr(command, "commands", {}).values():
        name_placeholders(sub)
    for param in command.params:
        if param.param_type_name == "argument":
            _plain_argument(param)
        if param.metavar is not None or getattr(param, "is_flag", False) or not param.name:
            continue
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        args = typing.get_args(annotation)
        inner = args[0] if args and typing.get_origin(annotation) in (list, tuple) else annotation
        if param.name in _METAVARS:
            param.metavar = _METAVARS[param.name]
        elif isinstance(inner, type) and issubclass(inner, pathlib.PurePath):
            param.metavar = "DIR" if param.name.endswith("dir") else "FILE"
        elif isinstance(inner, type) and issubclass(inner, enum.Enum):
            param.metavar = "|".join(str(m.value) for m in inner)
        else:
            param.metavar = _BY_TYPE.get(inner, param.name.upper())


def _plain_argument(param: Any) -> None:
    """`URL` in the usage line (not `{URL}`), and no `<str>` after it in the help."""

    def usage_name() -> str:
        name = param.metavar or param.name.upper()
        name = name if param.required else f"[{name}]"
        return name + ("..." if param.nargs != 1 else "")

    param._usage_display_name = usage_name
    param.display_type_rich = lambda ctx: None


class LazyCommand(TyperCommand):
    """Stands in for a subcommand in the root group until that subcommand is chosen."""

    def __init__(self, name: str, module: str, *, help_text: str | None = None) -> None:
        # help_text: the line `autoglm --help` shows instead of HELP's (an alias says what it is).
        super().__init__(name=name)
        self.module_name = f"{PACKAGE}.{module}"
        self.help_text = help_text
        self._loaded: _click.Command | None = None

    def _module(self) -> Any:
        return importlib.import_module(self.module_name)

    def materialize(self) -> _click.Command:
        if self._loaded is None:
            module = self._module()
            examples = getattr(module, "EXAMPLES", ())
            epilog = examples_epilog(examples) if examples else None
            group = getattr(module, "app", None)
            if isinstance(group, typer.Typer):
                command: _click.Command = typer.main.get_group(group)
                for part in (command, *command.commands.values()):
                    if epilog and not part.epilog:
                        part.epilog = epilog
            else:
                single = typer_app()
                single.command(
                    self.name,
                    help=module.HELP + (f"\n\n{self.help_text}." if self.help_text else ""),
                    epilog=epilog,
                    context_settings=getattr(module, "CONTEXT_SETTINGS", None),
                )(module.command)
                command = typer.main.get_command(single)
            command.name = self.name
            add_global_options(command)
            name_placeholders(command)
            use_plain_coercion(command)
            self._loaded = command
        return self._loaded

    def get_short_help_str(self, limit: int = 45) -> str:
        # From the module's HELP string: importing a command module is cheap, building it is not.
        text = self.help_text or self._module().HELP
        return _click.utils.make_default_short_help(text, limit)


class AutoglmGroup(TyperGroup):
    """The root group: materializes a `LazyCommand` when it is resolved (to run, complete or help)."""

    def resolve_command(
        self, ctx: _click.Context, args: list[str]
    ) -> tuple[str | None, _click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, LazyCommand):
            command = command.materialize()
        return name, command, rest

    def invoke(self, ctx: _click.Context) -> Any:
        # typer turns Ctrl-C into a silent exit 130; make it an error that says what was stopped.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            from .output import interruption

            raise interruption() from None

    def materialized(self, ctx: _click.Context, name: str) -> _click.Command | None:
        command = self.get_command(ctx, name)
        return command.materialize() if isinstance(command, LazyCommand) else command
