"""The state directory: atomic records, config snapshots named by content, damaged files."""

from __future__ import annotations

import json
import os

import pytest

from autoglm_cli.config import parse_config
from autoglm_cli.errors import EnvironmentFailure
from autoglm_cli.ops.deploy.repair import load_current
from autoglm_cli.ops.deploy.snapshot import config_hash, write_snapshot
from autoglm_cli.ops.deploy.state import StateDir, atomic_write, resolve_state_dir
from tests.ops.deploy.conftest import deployment_record


def test_a_record_survives_a_round_trip(tmp_path):
    state = StateDir(tmp_path / "state")
    record = deployment_record(ports={"gateway": 8000, "listening": [8000, 40111]})
    state.save_current(record)
    assert state.load_current() == record
    assert json.loads(state.current_file.read_text())["schema"] == 1


def test_no_temporary_files_are_left_behind(tmp_path):
    target = tmp_path / "f.json"
    atomic_write(target, "one")
    atomic_write(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def test_a_damaged_state_file_is_a_clear_error(tmp_path):
    state = StateDir(tmp_path)
    state.current_file.write_text("{not json")
    with pytest.raises(EnvironmentFailure) as info:
        state.load_current()
    assert str(state.current_file) in info.value.message
    assert "Move the damaged file away" in info.value.remedy


def test_health_key_is_private(tmp_path):
    state = StateDir(tmp_path)
    state.write_health_key("ak_" + "x" * 40)
    assert state.read_health_key() == "ak_" + "x" * 40
    assert os.stat(state.health_key_file).st_mode & 0o777 == 0o600


def test_snapshot_is_named_by_content_and_bakes_in_overrides(tmp_path):
    state = StateDir(tmp_path)
    base = parse_config("gateway: {port: 8000}\n", environ={})
    overridden = parse_config("gateway: {port: 8000}\n", environ={"AUTOGLM_GATEWAY__PORT": "9001"})
    first = write_snapshot(base, state)
    again = write_snapshot(parse_config("gateway: {port: 8000}\n", environ={}), state)
    other = write_snapshot(overridden, state)
    assert first.hash == again.hash == config_hash(base)
    assert other.hash != first.hash
    # The snapshot loads back as the same config, override included.
    reloaded = parse_config(other.path.read_text(), environ={})
    assert reloaded.gateway.port == 9001
    assert config_hash(reloaded) == other.hash


def test_state_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = parse_config("deploy: {state_dir: /srv/autoglm}\n", environ={})
    assert resolve_state_dir(config, tmp_path / "opt") == tmp_path / "opt"
    assert str(resolve_state_dir(config)) == "/srv/autoglm"
    assert resolve_state_dir(parse_config("", environ={})) == tmp_path / ".autoglm"


def test_a_record_left_starting_by_a_killed_deploy_is_repaired_when_read(tmp_path):
    import subprocess
    import sys

    state = StateDir(tmp_path / "state")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state.save_current(deployment_record(status="starting", pid=gone.pid, pid_create_time=0.0))
    repaired = load_current(state)
    assert repaired.status == "dead"  # not "starting" forever
    assert json.loads(state.current_file.read_text())["status"] == "dead"  # and saved so


def test_a_record_starting_while_its_deploy_runs_is_left_alone(tmp_path):
    import subprocess
    import sys

    import psutil

    state = StateDir(tmp_path / "state")
    state.save_current(deployment_record(status="starting", pid=None))
    deployer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": deployer.pid, "create_time": psutil.Process(deployer.pid).create_time()}
        state.lock_file.write_text(json.dumps(lock))
        assert load_current(state).status == "starting"
        assert load_current(state, repair=False).status == "starting"
    finally:
        deployer.kill()
        deployer.wait()
    assert load_current(state).status == "dead"  # the lock went stale with its process
