"""Beyond one machine, on 127.0.0.1: a `dask scheduler`, an `autoglm worker` and
`autoglm serve --dask-scheduler`, each its own process."""

from __future__ import annotations

import subprocess
import sys

import httpx
import openai
import psutil
import pytest

from autoglm_cli.testing.servers import ServeProcess, free_port

from .conftest import write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def dask_scheduler(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "scheduler.log", "wb"),  # noqa: SIM115
    )
    yield f"tcp://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(20)


def test_worker_dry_run_shows_the_dask_worker_command(cli, tmp_path):
    config = write_config(
        tmp_path / "c.yaml", {"model_pool": {"default": "sim"}, "models": {"sim": {"backend": "simulated"}}}
    )
    result = cli(
        "--json", "worker", "tcp://10.0.0.5:8786", "--config", config, "--nworkers", "2", "--dry-run"
    )
    assert result.exit_code == 0, result.stdout
    plan = result.json["result"]
    command = plan["command"]
    assert command[1:4] == ["-m", "distributed.cli.dask_worker", "tcp://10.0.0.5:8786"]
    assert command[command.index("--nthreads") + 1] == "1" and command[command.index("--nworkers") + 1] == "2"
    assert command[command.index("--preload") + 1] == "autoglm_cli.runtime.workers.plugin"
    assert plan["env"]["AUTOGLM_WORKER_MODELS"] == "sim" and plan["env"]["AUTOGLM_CONFIG"] == str(config)
    bad = cli("worker", "10.0.0.5:8786", "--config", config)
    assert bad.exit_code == 2 and "tcp://HOST:PORT" in bad.stderr
    undefined = cli("worker", "tcp://h:1", "--config", config, "--model", "nope")
    assert undefined.exit_code == 2 and "nope" in undefined.stderr


def test_serve_on_an_existing_cluster_with_an_autoglm_worker(dask_scheduler, tmp_path):
    config = write_config(
        tmp_path / "cluster.yaml",
        {
            "model_pool": {"default": "sim"},
            "models": {"sim": {"backend": "simulated", "options": {"output_tokens": 5, "load_seconds": 0.5}}},
            "workers": {"control_interval": "0.5s"},
            "gateway": {"auth": False},
            "log_level": "INFO",
        },
    )
    worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "autoglm_cli", "worker", dask_scheduler, "--config", str(config)],
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    try:
        with ServeProcess(config, extra=["--dask-scheduler", dask_scheduler]) as server:
            api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
            reply = api.completions.create(model="sim", prompt="hello", max_tokens=5)
            assert reply.choices[0].text == "simulated output from the autoglm"
            report = httpx.get(f"{server.url}/readyz").json()
            assert report["cluster"]["scheduler"] == dask_scheduler and report["cluster"]["owned"] is False
            [node] = report["nodes"]
            # The node runs in a process started by `autoglm worker` (its nanny's child).
            worker_processes = {p.pid for p in psutil.Process(worker.pid).children(recursive=True)}
            assert node["pid"] in worker_processes
        assert worker.poll() is None  # serve leaving does not stop the cluster's workers
    finally:
        worker.terminate()
        worker.wait(30)
        worker_log.close()
    assert "loading model sim" in (tmp_path / "worker.log").read_text()
