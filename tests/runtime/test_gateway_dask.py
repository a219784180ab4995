"""The vertical slice, for real: `autoglm serve` (a process) over an embedded Dask LocalCluster
with simulated model nodes, driven by the official `openai` client.

One gateway (2 worker processes) serves the whole module; the fault tests that
SIGKILL workers run last.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import openai
import pytest

from autoglm_cli.testing.servers import ServeProcess
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

SIMULATED_WORDS = "simulated output from the autoglm simulated backend ."


def expected_text(tokens: int) -> str:
    words = SIMULATED_WORDS.split()
    return " ".join(words[i % len(words)] for i in range(tokens))


@pytest.fixture(scope="module")
def gateway(keys):
    """examples/simulated.yaml as shipped; only the port, the keys file and the control tick differ."""
    config = REPO_ROOT / "examples" / "simulated.yaml"
    env = {"AUTOGLM_WORKERS__CONTROL_INTERVAL": "0.5s"}
    with ServeProcess(config, keys_file=keys.file, env=env, log=keys.file.with_name("serve.log")) as server:
        yield server


def client(gateway, key, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, **kwargs)


def readyz(gateway) -> dict:
    return httpx.get(f"{gateway.url}/readyz").json()


def test_chat_completion_with_the_openai_client(gateway, keys):
    reply = client(gateway, keys.full).chat.completions.create(
        model="sim-glm", messages=[{"role": "user", "content": "say something please"}], max_tokens=6
    )
    assert reply.choices[0].message.content == expected_text(6)
    assert reply.choices[0].finish_reason == "length"
    assert (
        reply.usage.prompt_tokens == 3
        and reply.usage.completion_tokens == 6
        and reply.usage.total_tokens == 9
    )
    assert reply.model == "sim-glm"


def test_streaming_chat_yields_the_same_text_token_by_token(gateway, keys):
    stream = client(gateway, keys.full).chat.completions.create(
        model="sim-glm",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert "".join(pieces) == expected_text(8)
    assert len(pieces) >= 4  # streamed in pieces, not one blob
    assert finish == "length" and usage.completion_tokens == 8


def test_completions_endpoint_honours_stop(gateway, keys):
    reply = client(gateway, keys.full).completions.create(
        model="sim-glm", prompt="x", max_tokens=10, stop=[" the"]
    )
    assert reply.choices[0].text == "simulated output from"
    assert reply.choices[0].finish_reason == "stop"


def test_models_list(gateway, keys):
    models = client(gateway, keys.read_only).models.list()
    assert [(m.id, m.owned_by) for m in models.data] == [("sim-glm", "autoglm-simulated")]


def test_auth_errors_in_openai_shape(gateway, keys):
    with pytest.raises(openai.AuthenticationError) as bad:
        client(gateway, "ak_" + "x" * 43).chat.completions.create(
            model="sim-glm", messages=[{"role": "user", "content": "hi"}]
        )
    assert bad.value.status_code == 401 and bad.value.code == "invalid_api_key"
    missing = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
    )
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client(gateway, keys.read_only).chat.completions.create(
            model="sim-glm", messages=[{"role": "user", "content": "hi"}]
        )
    assert denied.value.code == "insufficient_permissions"
    with pytest.raises(openai.PermissionDeniedError) as other:
        client(gateway, keys.other_model).chat.completions.create(
            model="sim-glm", messages=[{"role": "user", "content": "hi"}]
        )
    assert other.value.code == "model_not_allowed"


def test_rate_limit_answers_429_with_retry_after(gateway, keys):
    limited = client(gateway, keys.limited)
    for _ in range(2):
        limited.chat.completions.create(
            model="sim-glm", messages=[{"role": "user", "content": "hi"}], max_tokens=1
        )
    with pytest.raises(openai.RateLimitError) as exc:
        limited.chat.completions.create(
            model="sim-glm", messages=[{"role": "user", "content": "hi"}], max_tokens=1
        )
    retry_after = int(exc.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 30  # 2 per minute: the next token comes within 30 s


def test_task_api_submit_poll_cancel(gateway, keys):
    headers = {"Authorization": f"Bearer {keys.full}"}
    created = httpx.post(
        f"{gateway.url}/v1/tasks", headers=headers, json={"prompt": "p", "max_tokens": 3, "priority": "high"}
    )
    assert created.status_code == 202
    task = created.json()
    assert task["priority"] == "high" and task["status"] in ("queued", "running")
    deadline = time.monotonic() + 20
    while task["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        task = httpx.get(f"{gateway.url}/v1/tasks/{task['id']}", headers=headers).json()
    assert task["status"] == "succeeded"
    assert task["result"]["choices"][0]["text"] == expected_text(3)

    long = httpx.post(
        f"{gateway.url}/v1/tasks",
        headers=headers,
        json={"messages": [{"role": "user", "content": "x"}], "max_tokens": 24, "priority": "low"},
    ).json()
    cancelled = httpx.delete(f"{gateway.url}/v1/tasks/{long['id']}", headers=headers).json()
    assert cancelled["status"] == "cancelled"
    other = {"Authorization": f"Bearer {keys.other_model}"}
    assert httpx.get(f"{gateway.url}/v1/tasks/{long['id']}", headers=other).status_code == 404


def test_readyz_and_metrics(gateway, keys):
    report = readyz(gateway)
    assert report["ready"] is True and report["default_model"] == "sim-glm"
    nodes = [n for n in report["nodes"] if n["state"] == "ready"]
    assert len(nodes) == 2 and {n["engine"] for n in nodes} == {"dask"}
    assert len({n["pid"] for n in nodes}) == 2 and os.getpid() not in {n["pid"] for n in nodes}
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'http_requests_total{code="200",route="/v1/chat/completions"}' in text
    assert 'http_requests_total{code="429",route="/v1/chat/completions"}' in text
    assert 'autoglm_nodes{state="ready"} 2.0' in text
    assert 'autoglm_queue_depth{priority="high"}' in text
    assert "autoglm_tokens_generated_total" in text and "http_request_duration_seconds_bucket" in text


# -- faults: these kill worker processes, so they run last -------------------------------------------


def _kill_busy_worker(gateway) -> int:
    """SIGKILL the worker process of a node that is running a request; returns its pid."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        busy = [n for n in readyz(gateway)["nodes"] if n["state"] == "ready" and n["running"] > 0]
        if busy:
            os.kill(busy[0]["pid"], signal.SIGKILL)
            return busy[0]["pid"]
        time.sleep(0.02)
    raise AssertionError("no node became busy")


def _metric(gateway, name: str) -> float:
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_sigkill_of_a_worker_mid_request_loses_no_request(gateway, keys):
    api = client(gateway, keys.full, timeout=60)
    results: list = []

    def ask():
        results.append(
            api.chat.completions.create(
                model="sim-glm", messages=[{"role": "user", "content": "long"}], max_tokens=24
            )
        )

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    killed = _kill_busy_worker(gateway)
    for t in threads:
        t.join(60)
    assert len(results) == 2
    assert all(r.choices[0].message.content == expected_text(24) for r in results)
    assert _metric(gateway, 'autoglm_retries_total{reason="node_failure"}') >= 1

    # The dead node is reported, and the nanny's replacement worker gets a new node.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        report = readyz(gateway)
        ready = [n for n in report["nodes"] if n["state"] == "ready"]
        if len(ready) == 2 and killed not in {n["pid"] for n in ready}:
            break
        time.sleep(0.2)
    assert len(ready) == 2 and killed not in {n["pid"] for n in ready}
    assert any(n["state"] == "dead" and n["pid"] == killed for n in report["nodes"])


def test_sigkill_mid_stream_continues_the_stream_on_another_node(gateway, keys):
    api = client(gateway, keys.full, timeout=60)
    stream = api.chat.completions.create(
        model="sim-glm", messages=[{"role": "user", "content": "s"}], max_tokens=24, stream=True
    )
    pieces = []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
        if len(pieces) == 3:
            _kill_busy_worker(gateway)
    assert "".join(pieces) == expected_text(24)
