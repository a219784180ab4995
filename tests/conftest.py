"""Fixtures shared by every test: run the CLI in-process or as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from autoglm_cli.cli.app import main

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run `autoglm ARGS...` in-process; returns exit code, stdout and stderr.

    Runs in an empty working directory so a stray ./autoglm.yaml is never read.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOGLM_CONFIG", raising=False)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_autoglm(*args: str, env: dict | None = None, cwd: str | Path | None = None, timeout: float = 120):
    """Run `python -m autoglm_cli ARGS...` as a real process."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "autoglm_cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
