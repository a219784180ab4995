"""Structured logs: with `log_format: json` every line of a real `autoglm serve` is one
JSON object, and each finished request is a line with its ids, outcome and timings."""

from __future__ import annotations

import json
import os
import sys

import httpx
import pytest

from autoglm_cli.runtime.auth import KeyStore
from autoglm_cli.testing.servers import ServeProcess

from .conftest import write_config


def test_json_logs_carry_one_line_per_request_with_the_key_id_never_the_key(tmp_path):
    record, secret = KeyStore(tmp_path / "keys.json").create(name="client")
    config = write_config(
        tmp_path / "config.yaml",
        {
            "model_pool": {"default": "sim-glm", "backup": None},
            "models": {
                "sim-glm": {"backend": "simulated", "options": {"a": 0.0, "c": 0.001, "output_tokens": 4}}
            },
            "workers": {"engine": "inline", "count": 1},
            "log_level": "INFO",
            "log_format": "json",
        },
    )
    with ServeProcess(config, keys_file=tmp_path / "keys.json") as server:
        auth = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
            for stream in (False, True):
                body = {"model": "sim-glm", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
                assert client.post("/v1/chat/completions", json=body).status_code == 200
            missing = {"model": "sim-glm", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}
            assert client.post("/v1/chat/completions", json=missing).status_code == 400
    output = server.output()
    assert secret not in output
    lines = [line for line in output.splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in lines]  # every JSON-looking line parses
    assert entries and all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    requests = [e for e in entries if e["logger"] == "autoglm.requests"]
    assert [(r["status"], r["stream"]) for r in requests] == [("succeeded", False), ("succeeded", True)]
    for line in requests:
        assert line["key_id"] == record.id
        assert line["model"] == "sim-glm" and line["node"] and line["request_id"].startswith("chatcmpl")
        assert line["completion_tokens"] == 4 and line["http_status"] == 200
        assert 0 <= line["queue_wait_s"] <= line["duration_s"]
    assert requests[1]["ttft_s"] is not None  # streamed: the first piece was timed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_log_file_rotates_and_stderr_follows_it(tmp_path):
    """`serve --log-file` as the local deploy target starts it: stdout and stderr opened on
    the same file. The file rotates at log_max_bytes and keeps log_backups old files."""
    log = tmp_path / "serve.log"
    config = write_config(
        tmp_path / "config.yaml",
        {
            "model_pool": {"default": "sim-glm", "backup": None},
            "models": {
                "sim-glm": {"backend": "simulated", "options": {"a": 0.0, "c": 0.0, "output_tokens": 2}}
            },
            "workers": {"engine": "inline", "count": 1},
            "gateway": {"auth": False},
            "log_level": "INFO",
            "log_format": "json",
            "log_max_bytes": 4096,
            "log_backups": 2,
        },
    )
    server = ServeProcess(config, extra=["--log-file", str(log)], log=log)
    with server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            body = {"model": "sim-glm", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(60):  # ~600 bytes of request line each: several rotations
                assert client.post("/v1/chat/completions", json=body).status_code == 200
        rotated = sorted(p.name for p in tmp_path.glob("serve.log*"))
        assert rotated == ["serve.log", "serve.log.1", "serve.log.2"]  # two backups kept, no more
        assert all(p.stat().st_size <= 4096 + 1024 for p in tmp_path.glob("serve.log*"))
        # The process's stdout and stderr point at the current file, not a rotated-away one.
        for fd in (1, 2):
            assert os.readlink(f"/proc/{server.proc.pid}/fd/{fd}") == str(log)
    lines = [line for p in tmp_path.glob("serve.log*") for line in p.read_text().splitlines()]
    requests = [json.loads(line) for line in lines if '"autoglm.requests"' in line]
    assert requests and all(r["status"] == "succeeded" for r in requests)
