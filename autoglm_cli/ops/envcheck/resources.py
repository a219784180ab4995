"""Disk at the weights cache against what the configured models need; memory and CPUs.

Sizes are in GB (10^9 bytes), as the Hub and `models.<name>.size_gb` give them.
A model already (partly) in the cache needs only what is missing.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ...config import Config, ModelSpec
from ...hf_paths import hub_cache_dir, repo_folder_name
from ...units import size_text
from .model import Check, CheckSpec, Severity

CATEGORY = "resources"
GB = 1_000_000_000
_REPO_ID_RE = re.compile(r"^[\w.-]+/[\w.-]+$")


def plan(config: Config) -> list[CheckSpec]:
    section = config.env_check
    sized = {name: model for name, model in config.models.items() if model.size_gb}
    disk_severity = Severity.REQUIRED if sized else Severity.INFO
    cache = hub_cache_dir(config.weights.cache_dir)
    return [
        CheckSpec(
            CATEGORY,
            "disk",
            disk_severity,
            f"free space at the weights cache ({cache})"
            + (f" vs the {len(sized)} configured model(s)' size_gb" if sized else ""),
            run=lambda spec: check_disk(spec, cache, sized),
            timeout=30,
        ),
        CheckSpec(
            CATEGORY,
            "memory",
            Severity.RECOMMENDED if section.min_memory_gb else Severity.INFO,
            "total and available memory"
            + (f" (want >= {section.min_memory_gb} GB)" if section.min_memory_gb else ""),
            run=lambda spec: check_memory(spec, section.min_memory_gb),
            timeout=5,
        ),
        CheckSpec(
            CATEGORY,
            "cpu",
            Severity.RECOMMENDED if section.min_cpus else Severity.INFO,
            "CPU count" + (f" (want >= {section.min_cpus})" if section.min_cpus else ""),
            run=lambda spec: check_cpu(spec, section.min_cpus),
            timeout=5,
        ),
    ]


def check_disk(spec: CheckSpec, cache: Path, models: dict[str, ModelSpec]) -> Check:
    probe_at = _existing_ancestor(cache)
    free = shutil.disk_usage(probe_at).free
    needs = {name: _bytes_still_needed(model, cache) for name, model in models.items()}
    need = sum(needs.values())
    details = {
        "cache_dir": str(cache),
        "free_bytes": free,
        "needed_bytes": need,
        "models": {name: {"size_gb": m.size_gb, "missing_bytes": needs[name]} for name, m in models.items()},
    }
    found = f"{_gb(free)} free at {cache}"
    if not models:
        return spec.ok(found + " (no models.<name>.size_gb configured)", **details)
    wanted = ", ".join(f"{name} {_gb(n)}" for name, n in needs.items())
    if free < need:
        return spec.problem(
            f"{found}; models still need {_gb(need)} ({wanted})",
            f"Free {_gb(need - free)} or point weights.cache_dir (or HF_HUB_CACHE) at a larger disk.",
            **details,
        )
    return spec.ok(f"{found}; models still need {_gb(need)} ({wanted})", **details)


def _bytes_still_needed(model: ModelSpec, cache: Path) -> int:
    size = int((model.size_gb or 0) * GB)
    source = model.source
    if source and "://" not in source and Path(source).expanduser().is_dir():
        return 0  # weights served from a local directory: nothing to download
    if _REPO_ID_RE.match(source):
        blobs = cache / repo_folder_name(source) / "blobs"
        return max(0, size - _tree_size(blobs))
    return size


def _tree_size(folder: Path) -> int:
    total = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    except OSError:
        return 0  # not cached yet
    return total


def _existing_ancestor(path: Path) -> Path:
    """The cache may not exist yet; its disk is the one of its nearest existing parent."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_memory(spec: CheckSpec, min_gb: float | None) -> Check:
    import psutil

    memory = psutil.virtual_memory()
    details = {"total_bytes": memory.total, "available_bytes": memory.available}
    found = f"{_gb(memory.total)} total, {_gb(memory.available)} available"
    if min_gb and memory.total < min_gb * GB:
        return spec.problem(
            f"{found}, want {min_gb:g} GB", "Use a machine with more memory or a smaller model.", **details
        )
    return spec.ok(found, **details)


def check_cpu(spec: CheckSpec, min_cpus: int | None) -> Check:
    import psutil

    logical = psutil.cpu_count(logical=True) or 0
    physical = psutil.cpu_count(logical=False)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    details = {"logical": logical, "physical": physical, "usable": usable}
    found = f"{logical} logical" + (f", {physical} physical" if physical else "")
    if usable != logical:
        found += f", {usable} usable by this process"
    if min_cpus and usable < min_cpus:
        return spec.problem(
            f"{found}, want {min_cpus}", "Use a machine (or a CPU quota) with more cores.", **details
        )
    return spec.ok(found, **details)


def _gb(n: int) -> str:
    return size_text(n)  # shown in IEC units, like every size autoglm prints
