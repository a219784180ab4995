"""`deploy --dry-run` and `redeploy --dry-run` write nothing anywhere: the file tree before and after."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autoglm_cli.testing.servers import free_port
from tests.ops.deploy.conftest import simulated_config


def _tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every path under the roots with its size and mtime (a rewrite changes the mtime)."""
    found = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder) / name
                st = path.lstat()
                found[str(path)] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture
def home(tmp_path, monkeypatch):
    """HOME and the HF cache in the test's folder, so the walk covers them too."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / ".cache" / "huggingface"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return home


@pytest.mark.parametrize("target", ["local", "docker", "systemd"])
def test_deploy_dry_run_writes_nothing(cli, tmp_path, home, target):
    config = simulated_config(tmp_path / "sim.yaml", port=free_port(), state_dir=tmp_path / "state")
    (tmp_path / "sim.yaml").write_text(
        (tmp_path / "sim.yaml").read_text() + f"  # target {target}\n"
    )  # a config of its own per target
    args = ["deploy", "--dry-run", "--target", target, "--config", config, "--json"]
    if target == "systemd":
        args.insert(1, "--install")
    before = _tree(tmp_path)
    result = cli(*args)
    if result.exit_code != 0 and target == "docker" and "source checkout" in result.stderr:
        pytest.skip("no source checkout to plan an image from")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.json["result"]["action"] == "planned"
    assert _tree(tmp_path) == before
    assert not (tmp_path / "state").exists() and not (tmp_path / ".autoglm").exists()


def test_redeploy_dry_run_writes_nothing(cli, tmp_path, home):
    config = simulated_config(tmp_path / "sim.yaml", port=free_port(), state_dir=tmp_path / "state")
    before = _tree(tmp_path)
    result = cli("redeploy", "--dry-run", "--config", config, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert _tree(tmp_path) == before
