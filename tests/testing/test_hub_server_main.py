"""`python -m autoglm_cli.testing.hub_server DIR`: the README's offline hub."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

from autoglm_cli.testing.hub_server import fake_model_files
from tests.conftest import REPO_ROOT


def test_serves_every_org_name_folder_until_interrupted(tmp_path):
    repo = tmp_path / "hub" / "autoglm-demo" / "tiny-chat"
    repo.mkdir(parents=True)
    for name, data in fake_model_files(shard_size=1024).items():
        (repo / name).write_bytes(data)
    (tmp_path / "hub" / "empty-org").mkdir()  # no repos in it: ignored
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoglm_cli.testing.hub_server", str(tmp_path / "hub")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("serving autoglm-demo/tiny-chat at http://127.0.0.1:"), first
        endpoint = first.split(" at ")[1].strip()
        assert f"export HF_ENDPOINT={endpoint}" in proc.stdout.readline()
        with urllib.request.urlopen(f"{endpoint}/api/models/autoglm-demo/tiny-chat", timeout=10) as answer:
            info = json.load(answer)
        assert {s["rfilename"] for s in info["siblings"]} >= {"config.json", "tokenizer.json"}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_a_folder_without_repos_is_a_usage_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "autoglm_cli.testing.hub_server", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 2
    assert "no ORG/NAME/ folders" in result.stderr
