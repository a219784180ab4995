"""Ctrl-C during `fetch-weights` says how much is kept and that a rerun resumes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from autoglm_cli.testing.hub_server import HubServer, fake_model_files
from tests.conftest import REPO_ROOT


def test_ctrl_c_says_what_is_kept_and_a_rerun_resumes(tmp_path):
    server = HubServer()
    server.add_repo("org/slow", fake_model_files(shard_size=300_000, shards=1))
    server.inject("*.safetensors", times=None, bytes_per_second=100_000)
    cache = tmp_path / "hub"
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO_ROOT)}
    env.pop("AUTOGLM_CONFIG", None)
    with server as endpoint:
        argv = [sys.executable, "-m", "autoglm_cli", "fetch-weights", "org/slow", "--endpoint", endpoint]
        proc = subprocess.Popen(
            [*argv, "--cache-dir", str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        deadline = time.monotonic() + 60
        while server.bytes_served() < 100_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        # The file in flight is kept: still partial, or whole when its download
        # finished before the worker threads stopped.
        kept = (
            r"error: interrupted: "
            r"(\S+ \S+ kept in 1 partial file\(s\) under|the files fetched so far are kept in) "
        )
        assert re.match(kept + re.escape(str(cache)), err), err
        assert "rerun the same command to" in err
        assert "Traceback" not in err

        server.clear_faults()
        rerun = subprocess.run([*argv, "--cache-dir", str(cache)], capture_output=True, text=True, env=env)
        assert rerun.returncode == 0, rerun.stderr
