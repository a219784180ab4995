"""`autoglm config show` / `config validate`: the effective config and where each value came from.

A value's source is the most specific of, by precedence: a command-line flag, an
`AUTOGLM_<SECTION>__<FIELD>` environment variable, the config file (`file:line`),
the built-in default. A value set as part of a larger one (a whole `gateway:` block
from the environment, a list) takes the source of that larger one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import (
    ENV_OVERRIDE_PREFIX,
    _LineDict,
    load_config,
    load_yaml,
    read_config_text,
    resolve_config_path,
    with_overrides,
)
from .errors import ExitCode
from .redact import redact

DEFAULT = "default"


@dataclass(frozen=True)
class ConfigValue:
    key: str  # dotted: gateway.port, models.glm.backend
    value: Any  # secrets in URLs masked
    source: str  # "default", "FILE:LINE", "env NAME" or "flag --NAME"


@dataclass(frozen=True)
class ConfigExplained:
    file: str | None  # None: no file, built-in defaults
    values: tuple[ConfigValue, ...]
    warnings: tuple[str, ...]
    strict: bool = False

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.CHECK_FAILED if self.strict and self.warnings else ExitCode.OK


def explain_config(
    path: str | os.PathLike | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[str, Any]] | None = None,
    settings: Mapping[str, str] | None = None,
    strict: bool = False,
) -> ConfigExplained:
    """Load and validate the config as every command does, and say where each value came from.

    `flags` maps a dotted key to (the flag's name, its typed value): a command's own options.
    `settings` maps a dotted key to YAML text (`--set gateway.port=9000`), parsed and
    checked like an environment override. Raises `ConfigError` (exit 2) for a config that
    does not load.
    """
    env = dict(os.environ if environ is None else environ)
    set_names = {}
    for key, text in (settings or {}).items():
        name = ENV_OVERRIDE_PREFIX + "__".join(key.upper().split("."))
        env[name] = text
        set_names[name] = f"flag --set {key}"
    config = load_config(path, environ=env)
    flags = {key: given for key, given in (flags or {}).items() if given[1] is not None}
    config = with_overrides(config, {key: value for key, (_, value) in flags.items()})

    sources: dict[str, str] = {}
    resolved = resolve_config_path(path, env)
    if resolved is not None:
        raw = load_yaml(read_config_text(resolved), file=str(resolved))
        sources.update(_file_lines(raw, str(resolved), ""))
    for name in env:
        if name.startswith(ENV_OVERRIDE_PREFIX) and "__" in name:
            key = ".".join(name[len(ENV_OVERRIDE_PREFIX) :].lower().split("__"))
            sources[key] = set_names.get(name, f"env {name}")
    sources.update({key: f"flag {flag}" for key, (flag, _) in flags.items()})

    values = tuple(
        ConfigValue(key, _masked(value), _source(key, sources)) for key, value in _leaves(config, "")
    )
    return ConfigExplained(config.source, values, config.warnings, strict)


def validate_config(
    path: str | os.PathLike | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
    strict: bool = False,
) -> ConfigExplained:
    """The same check every command makes when it loads the config; `strict` fails on warnings."""
    return explain_config(path, environ=environ, settings=settings, strict=strict)


def _file_lines(raw: Any, file: str, prefix: str) -> Iterator[tuple[str, str]]:
    if not isinstance(raw, _LineDict):
        return
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, _LineDict) and value:
            # A section: its fields say where they are; the ones it leaves out are defaults.
            yield from _file_lines(value, file, dotted + ".")
        else:
            yield dotted, f"{file}:{raw.key_lines.get(key, raw.line)}"


def _source(key: str, sources: dict[str, str]) -> str:
    """The source of `key`, or of the nearest enclosing key set as a whole (a list, a mapping)."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        found = sources.get(".".join(parts[:end]))
        if found is not None:
            return found
    return DEFAULT


def _leaves(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            if field.compare:  # not `source` / `warnings`: how it was loaded, not what it says
                yield from _leaves(getattr(value, field.name), f"{prefix}{field.name}.")
    elif isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), value


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
