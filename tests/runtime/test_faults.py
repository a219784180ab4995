"""The runtime under real faults: a Dask scheduler killed and restarted, worker processes killed.

Real processes on 127.0.0.1 (`dask scheduler`, `autoglm worker`, `autoglm serve
--dask-scheduler`) and real SIGKILLs; the tests assert outcomes (status codes,
counts, recovery), never timings: those are in benchmarks/bench_chaos.py.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from autoglm_cli.testing.cluster_processes import DaskScheduler, kill_group, start_worker
from autoglm_cli.testing.servers import ServeProcess, free_port, wait_http

from .conftest import write_config

pytestmark = pytest.mark.slow

# Dask's client gives up on a lost scheduler after this (30 s by default); short here so that
# the outage outlasts it and `serve` has to connect a new client by itself.
DASK_ENV = {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"}


def chat(url: str, *, timeout: float = 60.0, stream: bool = False) -> httpx.Response:
    body = {"model": "sim", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=timeout)


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError("the condition did not come true")


def ready(url: str) -> bool:
    return httpx.get(f"{url}/readyz", timeout=5).status_code == 200


@pytest.fixture
def cluster_config(tmp_path) -> Path:
    return write_config(
        tmp_path / "faults.yaml",
        {
            "model_pool": {"default": "sim"},
            "models": {"sim": {"backend": "simulated", "options": {"output_tokens": 4, "a": 0.05}}},
            "workers": {"control_interval": "0.5s"},
            "gateway": {"auth": False, "queue_timeout": "3s"},
            "log_level": "INFO",
        },
    )


def test_serve_outlives_its_dask_scheduler_and_reconnects(tmp_path, cluster_config):
    scheduler = DaskScheduler(free_port(), tmp_path / "scheduler.log").start()
    workers = [start_worker(scheduler.address, cluster_config, tmp_path / "worker.log")]
    server = ServeProcess(
        cluster_config,
        extra=["--dask-scheduler", scheduler.address],
        env=DASK_ENV,
        log=tmp_path / "serve.log",
    )
    try:
        server.start()
        assert chat(server.url).status_code == 200
        serve_pid = server.proc.pid

        # The scheduler and its workers die (kill -9): nothing can serve.
        scheduler.kill()
        kill_group(workers[0])
        wait_until(lambda: not ready(server.url), 30)
        # Admission agrees with /readyz: 503 at once, with Retry-After, both kinds.
        for stream in (False, True):
            refused = chat(server.url, stream=stream, timeout=30)
            assert refused.status_code == 503, refused.text
            assert refused.headers.get("retry-after")
            assert refused.json()["error"]["code"] == "model_unavailable"
        # Longer than the client's own reconnect window: serve must build a new client.
        time.sleep(5)
        assert server.proc.poll() is None

        # A scheduler answers at the same address again, with a fresh worker.
        scheduler.start()
        workers.append(start_worker(scheduler.address, cluster_config, tmp_path / "worker.log"))
        wait_until(lambda: ready(server.url), 90)
        assert chat(server.url).status_code == 200
        assert chat(server.url, stream=True).status_code == 200
        assert server.proc.pid == serve_pid and server.proc.poll() is None
        log = server.output()
        assert "reconnected to the Dask scheduler" in log
        assert "Traceback" not in log
    finally:
        server.stop()
        for worker in workers:
            kill_group(worker)
        scheduler.kill()


def test_requests_on_a_killed_worker_are_rescued(tmp_path):
    config = write_config(
        tmp_path / "kill.yaml",
        {
            "model_pool": {"default": "sim"},
            # ~1 s a request: several are in flight on each worker at the kill.
            "models": {"sim": {"backend": "simulated", "options": {"output_tokens": 20, "c": 0.05}}},
            "workers": {"engine": "dask", "count": 2, "control_interval": "0.5s", "concurrency": 4},
            "gateway": {"auth": False},
            "log_level": "INFO",
        },
    )
    with ServeProcess(config, log=tmp_path / "serve.log") as server:
        nodes = httpx.get(f"{server.url}/readyz").json()["nodes"]
        victim = nodes[0]["pid"]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(chat, server.url) for _ in range(8)]
            time.sleep(0.5)
            psutil.Process(victim).kill()
            statuses = [f.result().status_code for f in futures]
        assert statuses == [200] * 8


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_drains_in_flight_requests_and_exits_cleanly(tmp_path, how):
    config = write_config(
        tmp_path / "drain.yaml",
        {
            "model_pool": {"default": "sim"},
            # ~2 s a request: they are still running when Ctrl-C comes.
            "models": {"sim": {"backend": "simulated", "options": {"output_tokens": 20, "c": 0.1}}},
            "workers": {"engine": "dask", "count": 2, "control_interval": "0.5s"},
            "gateway": {"auth": False, "shutdown_grace": "20s"},
        },
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "autoglm_cli", "serve", "--config", str(config), "--port", str(port)]
    with open(log, "wb") as out:
        # Its own process group, like a terminal's: Ctrl-C reaches serve and every worker process.
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_http(f"{url}/readyz", timeout=90, alive=lambda: proc.poll() is None)
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                futures = [pool.submit(chat, url, stream=i == 1) for i in range(2)]
                time.sleep(0.7)
                if how == "ctrl-c":  # a terminal's Ctrl-C reaches the whole process group
                    os.killpg(proc.pid, signal.SIGINT)
                else:  # a service manager's stop: the main process only
                    proc.send_signal(signal.SIGTERM)
                replies = [f.result() for f in futures]
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert [r.status_code for r in replies] == [200, 200]
    assert "[DONE]" in replies[1].text
    output = log.read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
