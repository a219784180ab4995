"""Where Hugging Face keeps things, by huggingface_hub's and transformers' own rules.

Computed here without importing either package, so start-up stays fast. One
place for every command that reads or writes the caches (env-check's disk check,
fetch-weights, verify --hf, migrate-cache, the runtime).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def _path(value: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(value)))


def hf_home(environ: Mapping[str, str] = os.environ) -> Path:
    """`HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`."""
    if environ.get("HF_HOME"):
        return _path(environ["HF_HOME"])
    xdg = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return _path(xdg) / "huggingface"


def hub_cache_dir(configured: str | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """`weights.cache_dir`, else `HF_HUB_CACHE` (or its old name), else `hf_home()/hub`."""
    for value in (configured, environ.get("HF_HUB_CACHE"), environ.get("HUGGINGFACE_HUB_CACHE")):
        if value:
            return _path(value)
    return hf_home(environ) / "hub"


def modules_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """transformers' `trust_remote_code` module cache: `HF_MODULES_CACHE`, else `hf_home()/modules`."""
    if environ.get("HF_MODULES_CACHE"):
        return _path(environ["HF_MODULES_CACHE"])
    return hf_home(environ) / "modules"


def local_dir_metadata(root: str | os.PathLike) -> Path:
    """Where huggingface_hub keeps its bookkeeping inside a `--local-dir` download."""
    return Path(root) / ".cache" / "huggingface"


def repo_folder_name(repo_id: str, repo_type: str = "model") -> str:
    """huggingface_hub's cache folder of a repo: `models--org--name` (`datasets--`, `spaces--`)."""
    return f"{repo_type}s--{repo_id.replace('/', '--')}"
