"""Accelerators: nvidia-smi (a real executable on PATH that answers as the driver's does) and torch.

On a machine with a real NVIDIA GPU, `test_the_real_nvidia_smi` checks the parser
against the real tool too.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata

import pytest

from autoglm_cli.errors import ExitCode
from autoglm_cli.ops.envcheck import CheckSpec, Severity, Status, accelerators, run_checks
from autoglm_cli.ops.envcheck.accelerators import QUERY_FIELDS, Gpu, GpuQuery, judge_torch

from .conftest import by_name, config, write_executable

# Captured from a real H100 machine (driver 580), second GPU added.
QUERY_OUTPUT = """\
0, NVIDIA H100 80GB HBM3, 81559, 580.159.04, GPU-0b3a2550-fdee-b017-f84a-a5ec55983440, 0
1, NVIDIA A10G, 23028, 580.159.04, GPU-7c1f0000-0000-0000-0000-000000000001, 512
"""
BANNER = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |
+-----------------------------------------+------------------------+----------------------+
"""


def _torch_installed() -> bool:
    try:
        metadata.version("torch")
    except metadata.PackageNotFoundError:
        return False
    return True


def gpu_checks(cfg) -> list:
    """Only the nvidia-smi check (the torch one imports torch in a child: seconds)."""
    (spec,) = [s for s in accelerators.plan(cfg) if s.name == "nvidia-gpus"]
    return spec.run(spec)


needs_torch = pytest.mark.skipif(
    not _torch_installed(), reason="torch is not installed (make install adds it)"
)


@pytest.fixture
def fake_smi(bin_dir):
    """nvidia-smi that lists two GPUs when asked exactly as the driver's tool is asked."""
    write_executable(
        bin_dir,
        "nvidia-smi",
        f"""
        if [ "$*" = "--query-gpu={QUERY_FIELDS} --format=csv,noheader,nounits" ]; then
            /bin/cat <<'EOF'
{QUERY_OUTPUT}EOF
        elif [ "$#" -eq 0 ]; then
            /bin/cat <<'EOF'
{BANNER}EOF
        else
            echo "unexpected arguments: $*" >&2; exit 2
        fi
        """,
    )
    return bin_dir


def test_each_gpu_is_a_check_with_name_memory_driver_and_cuda(fake_smi):
    report = gpu_checks(config())
    gpu0, gpu1 = by_name(report, "gpu0"), by_name(report, "gpu1")
    assert gpu0.value == "NVIDIA H100 80GB HBM3, 79.6 GiB, driver 580.159.04, CUDA 13.0"
    assert gpu0.details["memory_mib"] == 81559
    assert gpu0.details["uuid"] == "GPU-0b3a2550-fdee-b017-f84a-a5ec55983440"
    assert gpu1.details["name"] == "NVIDIA A10G"
    assert {gpu0.status, gpu1.status} == {Status.OK}
    assert gpu0.severity is Severity.INFO


def test_no_nvidia_smi_is_clearly_none_found_and_not_a_failure(bin_dir):
    (check,) = gpu_checks(config())
    assert (check.name, check.severity, check.status) == ("nvidia-gpus", Severity.INFO, Status.OK)
    assert check.value.startswith("none found (nvidia-smi not on PATH)")


def test_require_gpu_turns_none_found_into_a_failure(bin_dir):
    report = run_checks(config("env_check: {require_gpu: true}"), only=["accelerators"])
    check = by_name(report, "nvidia-gpus")
    assert (check.status, check.severity) == (Status.FAIL, Severity.REQUIRED)
    assert "require_gpu" in check.remedy
    assert report.exit_code == ExitCode.CHECK_FAILED


def test_a_failing_nvidia_smi_is_reported_with_its_message(bin_dir):
    write_executable(
        bin_dir,
        "nvidia-smi",
        'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver."\nexit 9\n',
    )
    (check,) = gpu_checks(config())
    assert check.status is Status.WARN
    assert "exited 9: NVIDIA-SMI has failed" in check.value
    assert "--gpus all" in check.remedy


@needs_torch
def test_torch_is_asked_in_a_child_process_and_a_cpu_build_is_fine_without_gpus(bin_dir):
    report = run_checks(config(), only=["accelerators"])
    check = by_name(report, "torch-cuda")  # PATH is empty: the probe runs the CLI's own interpreter
    version = metadata.version("torch")
    assert check.details["torch"] == version
    if check.details["available"]:
        pytest.skip("this machine has CUDA; the CPU-only case cannot be observed")
    assert check.status is Status.OK
    assert check.value.startswith(f"torch {version} (")
    assert check.value.endswith("sees no CUDA device; models will run on the CPU")


@needs_torch
def test_gpus_that_torch_cannot_see_are_a_warning(fake_smi):
    report = run_checks(config(), only=["accelerators"])
    check = by_name(report, "torch-cuda")
    if check.details["available"]:
        pytest.skip("torch sees a real GPU here")
    assert check.status is Status.WARN
    assert check.value.endswith("but nvidia-smi lists 2 GPU(s)")
    if check.details["cuda_build"] is None:
        assert "CUDA 13.0" in check.remedy


# The torch probe's answers captured on that H100 machine (torch 2.11.0+cu130), as is
# and with CUDA_VISIBLE_DEVICES= (the GPU hidden from torch).
H100_PROBE = {"version": "2.11.0+cu130", "cuda_build": "13.0", "available": True, "count": 1}
H100_HIDDEN = {"version": "2.11.0+cu130", "cuda_build": "13.0", "available": False, "count": 0}
H100_QUERY = GpuQuery(
    "/usr/bin/nvidia-smi", (Gpu(0, "NVIDIA H100 80GB HBM3", 81559, "580.159.04", "GPU-0"),), "13.0"
)


def _torch_spec(severity=Severity.INFO) -> CheckSpec:
    return CheckSpec("accelerators", "torch-cuda", severity, "", run=lambda spec: spec.ok(""))


def test_torch_seeing_the_gpu_is_ok():
    check = judge_torch(_torch_spec(Severity.REQUIRED), H100_PROBE, H100_QUERY)
    assert check.status is Status.OK
    assert check.value == "torch 2.11.0+cu130 sees 1 CUDA device(s) (CUDA 13.0)"


def test_a_gpu_hidden_from_torch_is_a_problem_even_when_gpus_are_optional():
    check = judge_torch(_torch_spec(), H100_HIDDEN, H100_QUERY)
    assert check.status is Status.WARN
    assert (
        check.value
        == "torch 2.11.0+cu130 (built for CUDA 13.0) sees no CUDA device, but nvidia-smi lists 1 GPU(s)"
    )
    assert "CUDA_VISIBLE_DEVICES" in check.remedy


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no NVIDIA driver on this machine")
def test_the_real_nvidia_smi():
    report = run_checks(config(), only=["accelerators"])
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout
    gpus = [c for c in report.checks if c.name.startswith("gpu")]
    assert len(gpus) == listed.count("GPU "), report.checks
    for check in gpus:
        assert check.status is Status.OK
        assert check.details["name"] in listed
        assert check.details["memory_mib"] > 0
        assert check.details["cuda"]
