"""Managed engines: a stand-in engine command that is a real process (the fake engine) is
started, serves, is killed, and is restarted; a real vLLM where one is at hand."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import threading
import time

import httpx
import pytest

from autoglm_cli.config import parse_config
from autoglm_cli.errors import EnvironmentFailure
from autoglm_cli.ops import worker as worker_ops
from autoglm_cli.runtime.engines.commands import engine_launches, fill
from autoglm_cli.runtime.engines.supervisor import EngineSupervisor
from autoglm_cli.testing.servers import free_port

STAND_IN = [sys.executable, "-m", "autoglm_cli.testing.fake_engine", "--port", "{port}", "--model", "{model}"]


def _config(**engines) -> object:
    return parse_config(
        json.dumps(
            {
                "model_pool": {"default": "glm"},
                "models": {
                    "glm": {
                        "backend": "openai",
                        "source": "http://127.0.0.1:8001/v1",
                        "options": {"model": "zai-org/glm-4-9b-chat"},
                    }
                },
                "engines": {"vllm": STAND_IN, "restart_base": "0.2s", "restart_max": "2s", **engines},
                "gateway": {"auth": False},
            }
        ),
        environ={},
    )


def test_command_lines_per_gpu_set_from_the_config():
    config = parse_config(
        json.dumps(
            {
                "models": {"glm": {"backend": "transformers", "source": "zai-org/glm-4-9b-chat"}},
                "weights": {"cache_dir": "/models/hub"},
                "engines": {"extra_args": ["--override-generation-config", '{"temperature": 0}']},
            }
        ),
        environ={},
    )
    launches = engine_launches(config, "vllm", "glm", gpus=("0", "1,2"), base_port=9000)
    assert [(e.port, e.env["CUDA_VISIBLE_DEVICES"]) for e in launches] == [(9000, "0"), (9001, "1,2")]
    assert launches[1].argv[:3] == ("vllm", "serve", "zai-org/glm-4-9b-chat")
    assert "--served-model-name" in launches[0].argv and launches[0].argv[-1] == '{"temperature": 0}'
    assert launches[0].env["HF_HUB_OFFLINE"] == "1" and launches[0].env["HF_HUB_CACHE"] == "/models/hub"
    assert launches[0].base_url == "http://127.0.0.1:9000/v1"
    assert fill(["--tp", "{tp}"], {"tp": "2"}) == ["--tp", "2"]


def test_a_missing_engine_binary_is_an_environment_error_before_anything_starts():
    config = _config(vllm=["no-such-engine-binary", "serve", "{source}", "--port", "{port}"])
    plan = worker_ops.plan_engines(config, engine="vllm")
    with pytest.raises(EnvironmentFailure) as raised:
        worker_ops.run_engines(plan)
    assert "no-such-engine-binary is not on PATH" in raised.value.message
    assert raised.value.exit_code == 3


def _wait(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_an_engine_that_dies_is_restarted_and_serves_again(caplog):
    caplog.set_level(logging.INFO, logger="autoglm.engine")
    (launch,) = engine_launches(_config(), "vllm", "glm", gpus=("0",), base_port=free_port())
    supervisor = EngineSupervisor(launch, restart_base=0.2, restart_max=2.0).start()
    try:
        assert supervisor.wait_ready(60), "the stand-in engine never became ready"
        models = httpx.get(f"{launch.base_url}/models", timeout=5).json()
        assert models["data"][0]["id"] == "zai-org/glm-4-9b-chat"
        first = supervisor.pid
        os.kill(first, signal.SIGKILL)
        assert _wait(lambda: supervisor.restarts == 1 and supervisor.ready.is_set()), supervisor.state
        assert supervisor.pid != first and supervisor.last_exit == -signal.SIGKILL
        reply = httpx.post(
            f"{launch.base_url}/chat/completions",
            json={"model": "zai-org/glm-4-9b-chat", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        assert reply.status_code == 200
    finally:
        supervisor.stop()
    assert supervisor.process.poll() is not None  # stopped for good
    lines = [r.getMessage() for r in caplog.records if r.name == "autoglm.engine"]
    assert any(launch.label in line and "| fake engine zai-org/glm-4-9b-chat" in line for line in lines)
    assert any("exited with status -9" in line for line in lines)


def test_run_engines_behind_a_gateway(tmp_path):
    """`worker --engine` as ops runs it, with a gateway whose model lists the engine's endpoint."""
    from autoglm_cli.runtime.gateway import create_app
    from autoglm_cli.testing.servers import ThreadedServer

    config = _config()
    plan = worker_ops.plan_engines(config, engine="vllm", gpus=("0", "1"), base_port=free_port())
    stop, ready, reports = threading.Event(), [], []
    thread = threading.Thread(
        target=lambda: reports.append(worker_ops.run_engines(plan, stop=stop, on_ready=ready.append))
    )
    thread.start()
    try:
        assert _wait(lambda: len(ready) == 2)
        front_config = parse_config(
            json.dumps(
                {
                    "model_pool": {"default": "glm"},
                    "models": {
                        "glm": {
                            "backend": "openai",
                            "source": plan.endpoints[0],
                            "options": {"model": "zai-org/glm-4-9b-chat", "endpoints": list(plan.endpoints)},
                        }
                    },
                    "gateway": {"auth": False},
                }
            ),
            environ={},
        )
        with ThreadedServer(create_app(front_config)) as front:
            reply = httpx.post(
                f"{front.url}/v1/chat/completions",
                json={"model": "glm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
                timeout=10,
            )
            assert reply.status_code == 200 and reply.json()["model"] == "zai-org/glm-4-9b-chat"
    finally:
        stop.set()
        thread.join(60)
    (report,) = reports
    assert [e.restarts for e in report.engines] == [0, 0] and report.exit_code == 0


def test_a_real_vllm_engine_serves_through_the_supervisor():
    model = os.environ.get("AUTOGLM_TEST_VLLM_MODEL")
    if shutil.which("vllm") is None:
        pytest.skip("vLLM is not installed here (and no GPU): the real-engine test runs on a GPU machine")
    if not model:
        pytest.skip("set AUTOGLM_TEST_VLLM_MODEL to a small model in the HF cache to run the real vLLM test")
    config = parse_config(
        json.dumps(
            {
                "models": {"m": {"backend": "transformers", "source": model}},
                "engines": {"extra_args": ["--max-model-len", "512", "--gpu-memory-utilization", "0.3"]},
            }
        ),
        environ={},
    )
    (launch,) = engine_launches(config, "vllm", "m", base_port=free_port())
    supervisor = EngineSupervisor(launch).start()
    try:
        assert supervisor.wait_ready(900)
        metrics = httpx.get(f"http://127.0.0.1:{launch.port}/metrics", timeout=10).text
        assert "vllm:num_requests_running" in metrics
    finally:
        supervisor.stop()


def test_worker_engine_dry_run_and_usage_errors(cli, tmp_path):
    from .conftest import write_config

    config = write_config(
        tmp_path / "c.yaml",
        {
            "model_pool": {"default": "glm"},
            "models": {"glm": {"backend": "transformers", "source": "org/glm"}},
        },
    )
    result = cli(
        "--json",
        "worker",
        "--engine",
        "sglang",
        "--config",
        config,
        "--gpus",
        "0,1",
        "--port",
        "9100",
        "--dry-run",
    )
    assert result.exit_code == 0, result.stdout
    (engine,) = result.json["result"]["engines"]
    assert engine["argv"][:3] == ["python", "-m", "sglang.launch_server"] and engine["port"] == 9100
    assert engine["env"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert cli("worker", "--engine", "tgi", "--config", config, "--dry-run").exit_code == 2
    assert cli("worker", "--config", config).exit_code == 2  # neither a scheduler nor an engine


def test_worker_engine_process_serves_and_stops_on_sigterm(tmp_path):
    """`autoglm worker --engine vllm` as its own process, with the stand-in engine command."""
    import subprocess

    from .conftest import write_config

    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        {
            "model_pool": {"default": "glm"},
            "models": {
                "glm": {"backend": "openai", "source": "http://x/v1", "options": {"model": "served-glm"}}
            },
            "engines": {"vllm": STAND_IN},
        },
    )
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoglm_cli",
            "worker",
            "--engine",
            "vllm",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert _wait(
            lambda: "ready at http://127.0.0.1:" in (tmp_path / "worker.log").read_text(), timeout=60
        )
        assert _answers(f"http://127.0.0.1:{port}/health")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    text = (tmp_path / "worker.log").read_text()
    assert "| fake engine served-glm" in text
    assert not _answers(f"http://127.0.0.1:{port}/health")  # the engine went with it


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
