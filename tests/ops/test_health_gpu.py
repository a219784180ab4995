"""The GPU probe reads `nvidia-smi`; its output below was recorded on a real H100 host."""

from __future__ import annotations

import os
import stat

from autoglm_cli.ops.health import Status, _gpu

# index, name, memory.total, driver_version, uuid, memory.used (env-check's query, which health shares)
H100_IDLE = "0, NVIDIA H100 80GB HBM3, 81559, 580.159.04, GPU-0, 0\n"
H100_FULL = (
    "0, NVIDIA H100 80GB HBM3, 81559, 580.159.04, GPU-0, 80100\n"
    "1, NVIDIA H100 80GB HBM3, 81559, 580.159.04, GPU-1, 1200\n"
)


def _fake_nvidia_smi(tmp_path, monkeypatch, output: str) -> None:
    tool = tmp_path / "bin" / "nvidia-smi"
    tool.parent.mkdir()
    tool.write_text(f"#!/bin/sh\nprintf '{output.replace(chr(10), chr(92) + 'n')}'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")


def test_an_idle_gpu_is_ok(tmp_path, monkeypatch):
    _fake_nvidia_smi(tmp_path, monkeypatch, H100_IDLE)
    check = _gpu()
    assert check.status is Status.OK
    assert check.detail == "#0 NVIDIA H100 80GB HBM3 0/81559 MiB"
    assert check.data["gpus"][0]["total_mib"] == 81559


def test_a_gpu_almost_full_warns(tmp_path, monkeypatch):
    _fake_nvidia_smi(tmp_path, monkeypatch, H100_FULL)
    check = _gpu()
    assert check.status is Status.WARN
    assert len(check.data["gpus"]) == 2


def test_no_gpu_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    check = _gpu()
    assert check.status is Status.SKIP
    assert "nvidia-smi not found" in check.detail
