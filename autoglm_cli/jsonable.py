"""Reports as plain JSON values: used by the CLI's `--json` and by ops (config snapshots).

A core module of its own so that ops never imports cli (the layers in pyproject.toml).
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import PurePath
from typing import Any


def to_jsonable(value: Any) -> Any:
    """Reports (frozen dataclasses, enums, paths) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return value
