"""/metrics of a real gateway (uvicorn) after real requests through the official `openai` client:
every metric docs/serve.md lists is exported, and the LLM-serving ones count what happened."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoglm_cli.runtime.gateway import create_app
from autoglm_cli.testing.servers import ThreadedServer

from .test_runtime_inline import config

SERVE_DOC = Path(__file__).resolve().parents[2] / "docs" / "serve.md"


def documented_metrics() -> list[str]:
    """The metric names in the first column of the table under "## Metrics" in docs/serve.md."""
    section = SERVE_DOC.read_text().split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    names = []
    for row in section.splitlines():
        if row.startswith("| `"):
            first_column = row.split(" | ", 1)[0]
            names += re.findall(r"`((?:autoglm|http)_[a-z_]+)`", first_column)
    return names


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def test_the_documented_metrics_are_exported_and_count_streams_queue_waits_nodes_and_errors():
    cfg = config(models={"sim": {"backend": "simulated", "options": {"c": 0.05, "output_tokens": 20}}})
    with ThreadedServer(create_app(cfg)) as server:
        api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
        stream = api.chat.completions.create(
            model="sim", messages=[{"role": "user", "content": "x"}], stream=True
        )
        pieces, during = [], None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
                if during is None:  # mid-stream: the node runs it
                    during = httpx.get(f"{server.url}/metrics").text
        answer = api.completions.create(model="sim", prompt="x", max_tokens=2)
        with pytest.raises(openai.NotFoundError):
            api.completions.create(model="nope", prompt="x")
        with pytest.raises(openai.BadRequestError):
            api.completions.create(model="sim", prompt="x", temperature=5)
        after = httpx.get(f"{server.url}/metrics").text
        [node] = httpx.get(f"{server.url}/readyz").json()["nodes"]

    assert len(pieces) == 20 and answer.usage.completion_tokens == 2
    documented = documented_metrics()
    # (prometheus_client adds a `NAME_created` gauge per counter and histogram: not ours to document)
    exported = {n for n in re.findall(r"^# TYPE (\S+) ", after, flags=re.M) if not n.endswith("_created")}
    assert "autoglm_time_to_first_token_seconds" in documented
    assert sorted(documented) == sorted(exported)  # each documented name exported, and nothing else

    node_labels = {"node": node["id"], "model": "sim"}
    assert value(during, "autoglm_requests_in_flight", **node_labels) == 1.0
    assert value(during, "autoglm_node_batch_occupancy", **node_labels) == 1.0
    assert value(after, "autoglm_requests_in_flight", **node_labels) == 0.0
    assert value(after, "autoglm_node_batch_occupancy", **node_labels) == 0.0
    # Only the stream has a first token and gaps between tokens; both requests waited in the queue.
    assert value(after, "autoglm_time_to_first_token_seconds_count", model="sim") == 1.0
    assert value(after, "autoglm_time_per_output_token_seconds_count", model="sim") == 1.0
    assert value(after, "autoglm_time_per_output_token_seconds_sum", model="sim") > 0
    assert value(after, "autoglm_queue_wait_seconds_count", model="sim") == 2.0
    assert value(after, "autoglm_request_errors_total", code="model_not_found") == 1.0
    assert value(after, "autoglm_request_errors_total", code="invalid_request_error") == 1.0


def test_queue_full_and_queue_timeout_are_counted_apart():
    cfg = config(
        models={"sim": {"backend": "simulated", "options": {"c": 0.2, "output_tokens": 20}}},
        gateway={"queue_timeout": "0.3s", "max_queue": 1},
    )
    with ThreadedServer(create_app(cfg)) as server:
        busy = httpx.post(f"{server.url}/v1/tasks", json={"prompt": "x"})  # holds the only node for 4 s
        waiting = httpx.post(f"{server.url}/v1/tasks", json={"prompt": "queued"})
        full = httpx.post(f"{server.url}/v1/completions", json={"prompt": "one too many"})
        assert full.status_code == 503 and waiting.status_code == 202
        deadline = time.monotonic() + 20  # the control tick (0.1 s) expires the waiting one after 0.3 s
        while time.monotonic() < deadline:
            if httpx.get(f"{server.url}/v1/tasks/{waiting.json()['id']}").json()["status"] == "failed":
                break
            time.sleep(0.02)
        metrics = httpx.get(f"{server.url}/metrics").text
        httpx.delete(f"{server.url}/v1/tasks/{busy.json()['id']}")
    assert value(metrics, "autoglm_request_errors_total", code="queue_full") == 1.0
    assert value(metrics, "autoglm_request_errors_total", code="queue_timeout") == 1.0
