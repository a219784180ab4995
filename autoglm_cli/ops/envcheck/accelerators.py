"""Accelerators: NVIDIA GPUs via `nvidia-smi --query-gpu`, and whether torch can see CUDA.

Without `env_check.require_gpu` these are informational: a CPU-only machine is
reported as "none found", not as a failure. A GPU that torch cannot see (a CPU
build of torch, a container started without `--gpus`) is reported either way,
because that is what makes a model load silently on the CPU.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
from dataclasses import dataclass

from ...config import Config
from .commands import run_command
from .model import Check, CheckSpec, Severity
from .packages import installed_version

CATEGORY = "accelerators"

# Also what `health` asks (memory.used): one query of the driver for both commands.
QUERY_FIELDS = "index,name,memory.total,driver_version,uuid,memory.used"
_CUDA_RE = re.compile(r"CUDA Version\s*:\s*([\d.]+)")

# Run in a child interpreter: importing torch takes seconds and must not slow or
# crash the CLI itself.
TORCH_PROBE = """\
import json, torch
available = torch.cuda.is_available()
print(json.dumps({
    "version": torch.__version__,
    "cuda_build": torch.version.cuda,
    "available": available,
    "count": torch.cuda.device_count() if available else 0,
    "names": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if available else [],
}))
"""


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mib: int | None
    driver: str
    uuid: str
    memory_used_mib: int | None = None


@dataclass(frozen=True)
class GpuQuery:
    smi_path: str | None  # None: nvidia-smi not on PATH
    gpus: tuple[Gpu, ...] = ()
    cuda_version: str | None = None  # the highest CUDA the driver supports
    error: str = ""  # nvidia-smi is there but failed


class _SharedGpuQuery:
    """Runs nvidia-smi once per env-check, for both the GPU and the torch check."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._lock = threading.Lock()
        self._result: GpuQuery | None = None

    def get(self) -> GpuQuery:
        with self._lock:
            if self._result is None:
                self._result = query_gpus(self._timeout)
            return self._result


def query_gpus(timeout: float, *, cuda_version: bool = True) -> GpuQuery:
    """The GPUs `nvidia-smi` lists (and, with `cuda_version`, the CUDA its banner names)."""
    smi = shutil.which("nvidia-smi", path=os.environ.get("PATH", os.defpath))
    if smi is None:
        return GpuQuery(None)
    listing = run_command([smi, f"--query-gpu={QUERY_FIELDS}", "--format=csv,noheader,nounits"], timeout)
    if not listing.ok:
        return GpuQuery(smi, error=listing.error)
    gpus = tuple(_parse_gpu_line(line) for line in listing.text.splitlines() if line.strip())
    if not cuda_version:
        return GpuQuery(smi, gpus)
    header = run_command([smi], timeout)  # the banner carries "CUDA Version: 12.4"
    match = _CUDA_RE.search(header.text)
    return GpuQuery(smi, gpus, match.group(1) if match else None)


def _parse_gpu_line(line: str) -> Gpu:
    index, name, memory, driver, uuid, used = (part.strip() for part in line.split(",", 5))
    return Gpu(
        index=int(index) if index.isdigit() else 0,
        name=name,
        memory_mib=_mib(memory),
        driver=driver,
        uuid=uuid,
        memory_used_mib=_mib(used),
    )


def _mib(text: str) -> int | None:
    return int(float(text)) if re.fullmatch(r"[\d.]+", text) else None


def plan(config: Config) -> list[CheckSpec]:
    section = config.env_check
    severity = Severity.REQUIRED if section.require_gpu else Severity.INFO
    shared = _SharedGpuQuery(float(section.command_timeout))
    specs = [
        CheckSpec(
            CATEGORY,
            "nvidia-gpus",
            severity,
            "NVIDIA GPUs via nvidia-smi: name, memory, driver, CUDA version",
            run=lambda spec: check_gpus(spec, shared.get()),
            timeout=2 * float(section.command_timeout) + 5,
        )
    ]
    torch_version = installed_version("torch")
    if torch_version is not None:
        torch_timeout = max(float(section.command_timeout), 30.0)
        specs.append(
            CheckSpec(
                CATEGORY,
                "torch-cuda",
                severity,
                f"CUDA visible to the installed torch {torch_version}",
                run=lambda spec: check_torch(spec, shared.get(), torch_timeout),
                timeout=torch_timeout + 2 * float(section.command_timeout) + 5,
            )
        )
    return specs


def check_gpus(spec: CheckSpec, query: GpuQuery) -> list[Check]:
    need = "Install the NVIDIA driver and check `nvidia-smi`, or unset env_check.require_gpu."
    if query.smi_path is None:
        if spec.severity is Severity.REQUIRED:
            return [spec.problem("none found (nvidia-smi not on PATH)", need)]
        return [spec.ok("none found (nvidia-smi not on PATH); models will run on the CPU", count=0)]
    if query.error:
        return [
            spec.problem(
                f"nvidia-smi failed: {query.error}",
                "The driver is not loaded or does not match: reinstall it or reboot; "
                "in a container, start it with GPU access (`--gpus all`).",
                path=query.smi_path,
            )
        ]
    if not query.gpus:
        if spec.severity is Severity.REQUIRED:
            return [spec.problem("none found (nvidia-smi lists no GPU)", need, path=query.smi_path)]
        return [spec.ok("none found (nvidia-smi lists no GPU)", count=0, path=query.smi_path)]
    return [
        spec.named(f"gpu{gpu.index}").ok(
            _describe(gpu, query.cuda_version),
            name=gpu.name,
            memory_mib=gpu.memory_mib,
            driver=gpu.driver,
            cuda=query.cuda_version,
            uuid=gpu.uuid,
        )
        for gpu in query.gpus
    ]


def _describe(gpu: Gpu, cuda: str | None) -> str:
    parts = [gpu.name]
    if gpu.memory_mib is not None:
        parts.append(f"{gpu.memory_mib / 1024:.1f} GiB")
    parts.append(f"driver {gpu.driver}")
    if cuda:
        parts.append(f"CUDA {cuda}")
    return ", ".join(parts)


def check_torch(spec: CheckSpec, query: GpuQuery, timeout: float) -> Check:
    output = run_command([sys.executable, "-c", TORCH_PROBE], timeout)
    if not output.ok:
        return spec.problem(
            f"cannot import torch: {output.error}",
            "Reinstall torch (`pip install --force-reinstall torch==VERSION`).",
        )
    try:
        probe = json.loads(output.text.splitlines()[-1])
    except (ValueError, IndexError):
        return spec.problem(f"unexpected output from the torch probe: {output.text[:200]!r}", "")
    return judge_torch(spec, probe, query)


def judge_torch(spec: CheckSpec, probe: dict, query: GpuQuery) -> Check:
    """What the torch probe's answer means, given what nvidia-smi found."""
    version = probe["version"]
    details = {
        "torch": version,
        "cuda_build": probe["cuda_build"],
        "available": probe["available"],
        "count": probe["count"],
    }
    if probe["available"]:
        return spec.ok(
            f"torch {version} sees {probe['count']} CUDA device(s) (CUDA {probe['cuda_build']})", **details
        )
    build = "a CPU build" if probe["cuda_build"] is None else f"built for CUDA {probe['cuda_build']}"
    found = f"torch {version} ({build}) sees no CUDA device"
    if query.gpus:
        remedy = (
            f"Install a CUDA build of torch that the driver's CUDA {query.cuda_version} supports"
            if probe["cuda_build"] is None
            else "Check CUDA_VISIBLE_DEVICES and that the driver supports this torch's CUDA version"
        )
        return spec.problem(
            f"{found}, but nvidia-smi lists {len(query.gpus)} GPU(s)", remedy + ".", **details
        )
    if spec.severity is Severity.REQUIRED:
        return spec.problem(
            found, "Run on a machine with an NVIDIA GPU and a CUDA build of torch.", **details
        )
    return spec.ok(found + "; models will run on the CPU", **details)
