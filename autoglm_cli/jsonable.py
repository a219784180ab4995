"""Reports as plain JSON values: used by the CLI's `--json` and by ops (config snapshots).

A core module of its own so that ops never imports cli (the layers in pyproject.toml).
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import PurePath
from typing import Any

_PLAIN = (str, int, float, bool, type(None))
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # dataclasses.fields() is slow on 100k results


def to_jsonable(value: Any) -> Any:
    """Reports (frozen dataclasses, enums, paths) as plain JSON values."""
    if isinstance(value, enum.Enum):  # before str: a str-valued enum is a str too
        return value.value
    if isinstance(value, _PLAIN):
        return value
    cls = type(value)
    names = _FIELD_NAMES.get(cls)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: to_jsonable(getattr(value, name)) for name in names}
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return value
