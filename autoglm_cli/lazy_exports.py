"""A package's public names loaded on first use (PEP 562).

A package `__init__` that imports every module makes importing one of them pay for
all; `health` would import the whole deploy flow. With `lazy_exports` the package
names stay importable (`from autoglm_cli.ops.deploy import deploy`) and each module
loads when one of its names is first asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that finds each name in `package.<homes[name]>`."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home}"), name)

    return __getattr__
