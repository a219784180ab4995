"""An upstream that fails: its own errors reach the client as they are; only failures in a row
across requests open the endpoint's breaker, and a probe that answers closes it again.

A real HTTP upstream (`testing.flaky_upstream.FlakyUpstream`) behind a real gateway (uvicorn).
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from autoglm_cli.config import parse_config
from autoglm_cli.runtime.fleet import BREAKER_THRESHOLD
from autoglm_cli.runtime.gateway import create_app
from autoglm_cli.testing.flaky_upstream import FlakyUpstream
from autoglm_cli.testing.servers import ThreadedServer


@pytest.fixture
def upstream_gateway():
    upstream = FlakyUpstream(fail_every=3)
    with ThreadedServer(upstream) as server:
        config = parse_config(
            json.dumps(
                {
                    "model_pool": {"default": "up"},
                    "models": {
                        "up": {"backend": "openai", "source": f"{server.url}/v1", "options": {"model": "up"}}
                    },
                    "gateway": {"auth": False},
                }
            )
        )
        with ThreadedServer(create_app(config)) as gateway:
            yield upstream, gateway.url


def ask(url: str, n: int, *, stream: bool = False) -> httpx.Response:
    body = {"model": "up", "messages": [{"role": "user", "content": f"request {n}"}], "stream": stream}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def node_state(url: str) -> str:
    [node] = httpx.get(f"{url}/readyz").json()["nodes"]
    return node["state"]


def test_a_requests_own_upstream_error_reaches_the_client_and_spares_the_others(upstream_gateway):
    upstream, url = upstream_gateway
    replies = {n: ask(url, n, stream=n % 2 == 0) for n in range(1, 25)}
    for n, reply in replies.items():
        if n % 3 == 0:  # poisoned: the upstream's status and message, streamed or not
            assert reply.status_code == 500, reply.text
            assert "poisoned request" in reply.json()["error"]["message"]
        else:
            assert reply.status_code == 200, reply.text
    assert upstream.calls == 24  # a 500 is not retried: the same request would fail again
    assert node_state(url) == "ready"


def test_failures_in_a_row_open_the_breaker_and_a_probe_closes_it(upstream_gateway):
    upstream, url = upstream_gateway
    upstream.broken = True
    for n in range(BREAKER_THRESHOLD):
        assert ask(url, 1 + 3 * n + 1).status_code == 500
    assert node_state(url) == "failed"
    refused = ask(url, 1)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_unavailable"
    assert refused.headers.get("retry-after")
    calls = upstream.calls
    wait_ready(url)  # the probe answers (the process is up): half-open
    assert upstream.calls == calls  # no request reached it while open: only the probe did
    assert ask(url, 1).status_code == 500  # still sick: one request decides
    assert node_state(url) == "failed"  # open again at once
    upstream.broken = False
    wait_ready(url)
    assert all(ask(url, n).status_code == 200 for n in (1, 2, 4, 5, 7))
    assert node_state(url) == "ready"


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while node_state(url) != "ready" and time.monotonic() < deadline:
        time.sleep(0.2)
