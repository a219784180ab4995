"""Where the caches are: the hub cache, the module cache and directory caches.

The hub and module caches follow huggingface_hub's and transformers' own rules
(`HF_HUB_CACHE`, `HF_HOME`, `HF_MODULES_CACHE`), computed here without importing
either package (start-up stays fast).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def hf_home(environ=os.environ) -> Path:
    if environ.get("HF_HOME"):
        return Path(os.path.expanduser(environ["HF_HOME"]))
    xdg = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "huggingface"


def default_hub_cache(environ=os.environ) -> Path:
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if environ.get(name):
            return Path(os.path.expanduser(environ[name]))
    return hf_home(environ) / "hub"


def default_modules_cache(environ=os.environ) -> Path:
    if environ.get("HF_MODULES_CACHE"):
        return Path(os.path.expanduser(environ["HF_MODULES_CACHE"]))
    return hf_home(environ) / "modules"


@dataclass(frozen=True)
class Locations:
    hub_cache: Path
    modules_cache: Path | None = None
    to_hub_cache: Path | None = None  # another hub cache to migrate into (e.g. a bigger disk)
    root: Path | None = None  # the directory cache of `dir` rows
    to_root: Path | None = None

    @classmethod
    def resolve(
        cls,
        *,
        hub_cache: str | os.PathLike | None = None,
        to_hub_cache: str | os.PathLike | None = None,
        modules_cache: str | os.PathLike | None = None,
        root: str | os.PathLike | None = None,
        to_root: str | os.PathLike | None = None,
        environ=os.environ,
    ) -> Locations:
        def path(value) -> Path | None:
            return Path(os.path.expanduser(str(value))).absolute() if value else None

        return cls(
            hub_cache=path(hub_cache) or default_hub_cache(environ).absolute(),
            modules_cache=path(modules_cache) or default_modules_cache(environ).absolute(),
            to_hub_cache=path(to_hub_cache),
            root=path(root),
            to_root=path(to_root),
        )
