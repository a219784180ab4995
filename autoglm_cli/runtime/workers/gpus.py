"""Which GPUs each worker process sees, when the host has several (`CUDA_VISIBLE_DEVICES`).

Worker i of a host gets its own GPU (or, with `workers.gpus_per_worker` k, its
own set of k): the GPUs are cut into groups of k and worker i takes group
i mod groups, so two workers on a 2-GPU host never share `cuda:0`, and a
third one (more workers than groups) shares with the first. A host with one GPU
or none is left alone. Pure functions here; `clusters.DaskCluster` (the
embedded LocalCluster: each worker's nanny starts it with its own variable) and
`plugin.ModelPlugin` (`autoglm worker`: each worker sets it before it loads a
model) apply them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from ...errors import ConfigError

ENV = "CUDA_VISIBLE_DEVICES"
ENV_GPUS = "AUTOGLM_WORKER_GPUS"  # `autoglm worker`: the GPUs its worker processes share out
ENV_PER_WORKER = "AUTOGLM_WORKER_GPUS_PER_WORKER"
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one entry per GPU the driver sees


def host_gpus(
    spec: str = "auto", *, environ: Mapping[str, str] = os.environ, driver_dir: Path = NVIDIA_GPUS
) -> list[str]:
    """The GPUs to share out among this host's workers.

    `spec` (`workers.gpus`): "none" -> none; "0,1,3" -> those; "auto" -> this process's
    `CUDA_VISIBLE_DEVICES` when it is set, else one per GPU the NVIDIA driver lists.
    """
    spec = spec.strip()
    if spec == "none":
        return []
    if spec != "auto":
        gpus = [g.strip() for g in spec.split(",")]
        if not all(gpus):
            raise ConfigError(
                f"workers.gpus must be auto, none or a comma-separated list of GPUs, not {spec!r}",
                field="workers.gpus",
            )
        return gpus
    visible = environ.get(ENV)
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        return [str(i) for i in range(len(list(driver_dir.iterdir())))]
    except OSError:  # no NVIDIA driver: no GPUs
        return []


def gpu_set(index: int, gpus: list[str], per_worker: int = 1) -> str | None:
    """`CUDA_VISIBLE_DEVICES` for worker `index` (0, 1, ...); None: leave it alone (under 2 GPUs)."""
    if len(gpus) < 2:
        return None
    size = max(1, min(per_worker, len(gpus)))
    group = index % (len(gpus) // size)
    return ",".join(gpus[group * size : (group + 1) * size])


def worker_index(name: object) -> int | None:
    """A worker's index from its Dask name: 3 (LocalCluster), "host-3" (`dask worker --nworkers`);
    None for any other name (a lone worker)."""
    if isinstance(name, int):
        return name
    if str(name).isdigit():
        return int(str(name))
    match = re.search(r"-(\d+)$", str(name))
    return int(match.group(1)) if match else None
