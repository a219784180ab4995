"""What a deployment serves: the default model, its weights revision and size on disk.

Read straight from the standard HF cache layout (`models--org--name/refs/<rev>`,
`blobs/`), so recording a deployment never imports huggingface_hub or touches
the network.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...config import Config

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_GB = 1e9


@dataclass(frozen=True)
class ModelInfo:
    name: str  # the name clients ask for (model_pool.default)
    source: str  # hub repo id, URL or local directory ("" when the config names none)
    revision: str | None  # the resolved commit, or None when unknown
    size_gb: float  # configured size, else bytes found on disk, else 0


def hub_cache_dir(config: Config | None = None) -> Path:
    """The HF hub cache autoglm uses (`hf_paths`: weights.cache_dir > HF_HUB_CACHE > HF_HOME/hub)."""
    from ...hf_paths import hub_cache_dir as resolve

    return resolve(config.weights.cache_dir if config is not None else None)


def repo_folder(cache: Path, repo_id: str) -> Path:
    from ...hf_paths import repo_folder_name

    return cache / repo_folder_name(repo_id)


def _is_repo_id(source: str) -> bool:
    return (
        bool(source)
        and "://" not in source
        and source.count("/") == 1
        and not source.startswith((".", "/", "~"))
    )


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total


def default_model(config: Config) -> ModelInfo:
    """The model the health probes ask for, with what the cache knows about it."""
    name = config.model_pool.default
    spec = config.models.get(name)
    source = spec.source if spec is not None else name
    revision_wanted = spec.revision if spec is not None else "main"
    revision: str | None = None
    on_disk = 0
    if source and Path(source).expanduser().is_dir():
        on_disk = _dir_size(Path(source).expanduser())
    elif _is_repo_id(source):
        folder = repo_folder(hub_cache_dir(config), source)
        if _COMMIT.match(revision_wanted or ""):
            revision = revision_wanted
        else:
            ref = folder / "refs" / (revision_wanted or "main")
            try:
                revision = ref.read_text().strip() or None
            except OSError:
                revision = None
        if (folder / "blobs").is_dir():
            on_disk = _dir_size(folder / "blobs")
    configured = spec.size_gb if spec is not None and spec.size_gb else None
    return ModelInfo(name=name, source=source, revision=revision, size_gb=configured or on_disk / _GB)


def health_timeout(config: Config, model: ModelInfo) -> float:
    """The health gate's budget: a base plus a share per GB of weights (big models load slowly)."""
    return float(config.deploy.health_timeout) + float(config.deploy.health_timeout_per_gb) * model.size_gb
