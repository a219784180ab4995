"""Helpers for env-check tests: real executables in a private PATH, configs from YAML."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path

import pytest

from autoglm_cli.config import Config, parse_config
from autoglm_cli.ops.envcheck import Check, EnvReport


def write_executable(folder: Path, name: str, script: str) -> Path:
    """A real executable shell script `folder/name` (the body runs under /bin/sh)."""
    path = folder / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script).lstrip())
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def config(text: str = "") -> Config:
    return parse_config(textwrap.dedent(text), environ={})


def by_name(report: EnvReport | list[Check], name: str) -> Check:
    checks = report.checks if isinstance(report, EnvReport) else report
    matches = [c for c in checks if c.name == name]
    assert len(matches) == 1, [c.name for c in checks]
    return matches[0]


@pytest.fixture
def bin_dir(tmp_path, monkeypatch) -> Path:
    """An empty folder that is the whole PATH: only the executables a test writes exist."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder
