"""Value conversion for plain option types without pydantic.

typer (0.2x) converts every option's value through a pydantic `TypeAdapter`, and
importing pydantic costs more than the rest of a command's start-up together. Our
options are plain (bool, int, float, str, Path, an Enum, a list of one of those),
so each gets a small converter with click's messages instead; any other type keeps
typer's. Used only through `use_plain_coercion`, which leaves a typer without
this internal layer (`typer._coercion`) alone.
"""

from __future__ import annotations

import enum
import typing
from pathlib import Path
from typing import Any

try:  # typer's internal runtime-conversion layer; absent in older typers
    from typer._click.exceptions import BadParameter
    from typer._coercion import RuntimeParam
except ImportError:  # pragma: no cover - another typer: keep its own conversion
    RuntimeParam = None  # type: ignore[assignment,misc]

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


def _convert_one(kind: Any, value: Any, param: Any, ctx: Any) -> Any:
    if isinstance(kind, type) and isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        result = value
    elif kind is bool:
        text = str(value).strip().lower()
        if text not in _TRUE | _FALSE:
            raise BadParameter(f"{value!r} is not a valid boolean.", ctx=ctx, param=param)
        result = text in _TRUE
    elif kind in (int, float):
        try:
            result = kind(value)
        except (TypeError, ValueError):
            noun = "integer" if kind is int else "number"
            raise BadParameter(f"{value!r} is not a valid {noun}.", ctx=ctx, param=param) from None
    elif kind is str:
        result = str(value)
    elif kind is Path:
        result = Path(value)
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        for member in kind:
            if str(member.value) == str(value):
                return member
        choices = ", ".join(repr(str(m.value)) for m in kind)
        raise BadParameter(f"{value!r} is not one of {choices}.", ctx=ctx, param=param)
    else:  # pragma: no cover - filtered by _plain()
        raise TypeError(kind)
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if kind in (int, float) and ((low is not None and result < low) or (high is not None and result > high)):
        bounds = " and ".join(
            part for part in (low is not None and f"x>={low}", high is not None and f"x<={high}") if part
        )
        raise BadParameter(f"{result} is not in the range {bounds}.", ctx=ctx, param=param)
    return result


def _plain(annotation: Any) -> tuple[Any, bool] | None:
    """(element type, is a list) when we convert this annotation ourselves, else None."""
    if typing.get_origin(annotation) is list:
        (inner,) = typing.get_args(annotation)
        return (inner, True) if _plain(inner) == (inner, False) else None
    if annotation in (bool, int, float, str, Path):
        return annotation, False
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation, False
    return None


if RuntimeParam is not None:

    class _PlainRuntimeParam(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            kind, many = _plain(self.annotation)  # type: ignore[misc]
            if many:
                items = value if isinstance(value, (list, tuple)) else [value]
                return [_convert_one(kind, item, param, ctx) for item in items]
            return _convert_one(kind, value, param, ctx)


def use_plain_coercion(command: Any) -> None:
    """Give every plain-typed parameter of `command` (and its subcommands) our converter."""
    if RuntimeParam is None:
        return
    import types

    for sub in getattr(command, "commands", {}).values():
        use_plain_coercion(sub)
    # -h/--help is made on first use; make it now (the names every command uses) to convert it too.
    help_option = command.get_help_option(types.SimpleNamespace(help_option_names=["-h", "--help"]))
    for param in (*command.params, *([help_option] if help_option is not None else [])):
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or descriptor.file_annotation is not None:
            continue
        if not hasattr(param, "_runtime_param"):
            continue
        if _plain(descriptor.annotation) is not None:
            param._runtime_param = _PlainRuntimeParam(
                parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
            )
