"""Disk at the weights cache vs the configured models, memory and CPUs (psutil, the real disk)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil
import pytest

from autoglm_cli.errors import ExitCode
from autoglm_cli.ops.envcheck import Severity, Status, run_checks

from .conftest import by_name, config


def cache_config(cache: Path, models: str = "") -> str:
    return f"weights: {{cache_dir: '{cache}'}}\n" + models


def test_disk_without_sized_models_just_reports_free_space(tmp_path):
    check = by_name(run_checks(config(cache_config(tmp_path / "hub")), only=["resources"]), "disk")
    assert check.severity is Severity.INFO and check.status is Status.OK
    assert check.details["cache_dir"] == str(tmp_path / "hub")
    # The cache does not exist yet: free space is measured on the disk it will live on.
    assert abs(check.details["free_bytes"] - shutil.disk_usage(tmp_path).free) < 64 * 1024 * 1024


def test_a_model_larger_than_the_free_space_fails(tmp_path):
    models = "models:\n  glm: {source: zai-org/glm-4-9b-chat, size_gb: 100000}\n"
    report = run_checks(config(cache_config(tmp_path / "hub", models)), only=["resources"])
    check = by_name(report, "disk")
    assert (check.severity, check.status) == (Severity.REQUIRED, Status.FAIL)
    assert "models still need 90.9 TiB (glm 90.9 TiB)" in check.value
    assert "weights.cache_dir" in check.remedy
    assert report.exit_code == ExitCode.CHECK_FAILED


def test_what_is_already_in_the_cache_is_not_needed_again(tmp_path):
    cache = tmp_path / "hub"
    blobs = cache / "models--zai-org--glm-4-9b-chat" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "sha256-of-a-shard").write_bytes(b"x" * 1500)
    weights_dir = tmp_path / "local-weights"
    weights_dir.mkdir()
    models = (
        "models:\n"
        "  glm: {source: zai-org/glm-4-9b-chat, size_gb: 0.000002}\n"  # 2000 bytes, 1500 cached
        f"  local: {{source: '{weights_dir}', size_gb: 5}}\n"  # served from disk: nothing to fetch
        "  remote: {source: 'https://example.org/w.safetensors', size_gb: 0.000001}\n"
    )
    check = by_name(run_checks(config(cache_config(cache, models)), only=["resources"]), "disk")
    assert check.status is Status.OK
    assert check.details["models"]["glm"]["missing_bytes"] == 500
    assert check.details["models"]["local"]["missing_bytes"] == 0
    assert check.details["models"]["remote"]["missing_bytes"] == 1000
    assert check.details["needed_bytes"] == 1500


def test_memory_and_cpus_are_reported_from_psutil(tmp_path):
    report = run_checks(config(), only=["resources"])
    memory, cpu = by_name(report, "memory"), by_name(report, "cpu")
    assert memory.details["total_bytes"] == psutil.virtual_memory().total
    assert memory.severity is Severity.INFO
    assert cpu.details["logical"] == psutil.cpu_count()
    assert cpu.details["usable"] == len(os.sched_getaffinity(0))
    assert cpu.value.startswith(f"{psutil.cpu_count()} logical")


@pytest.mark.parametrize(
    ("field", "name"), [("min_memory_gb: 1000000", "memory"), ("min_cpus: 100000", "cpu")]
)
def test_minimums_from_the_config_warn_when_not_met(field, name):
    report = run_checks(config(f"env_check: {{{field}}}"), only=["resources"])
    check = by_name(report, name)
    assert (check.severity, check.status) == (Severity.RECOMMENDED, Status.WARN)
    assert check.remedy
    assert report.exit_code == ExitCode.OK  # recommended: a warning, not a failure
