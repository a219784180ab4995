"""The openai backend against real upstreams: another autoglm gateway, and a scripted server for faults."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import openai
import pytest

from autoglm_cli.config import load_config, parse_config
from autoglm_cli.runtime.backends.base import BackendSettings, GenerationRequest
from autoglm_cli.runtime.backends.openai_upstream import UpstreamHandle
from autoglm_cli.runtime.errors import ApiError, NodeFailure, ServiceUnavailable
from autoglm_cli.runtime.gateway import create_app
from autoglm_cli.testing.servers import ThreadedServer, answer_lifespan, free_port, read_body
from tests.conftest import REPO_ROOT

from .conftest import make_keys


class Scripted:
    """An ASGI app answering from a script of (status, headers, body, delay); counts concurrency."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        body = await read_body(receive)
        with self.lock:
            step = self.script[min(self.calls, len(self.script) - 1)]
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if body:
            self.bodies.append(json.loads(body))
        self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        status, headers, payload, delay = step
        try:
            await asyncio.sleep(delay)
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()]
                    + [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": raw})
        finally:
            with self.lock:
                self.in_flight -= 1


OK = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def settings(url: str, **kwargs) -> BackendSettings:
    return BackendSettings(model="glm", backend="openai", source=url, **kwargs)


def run(coro):
    return asyncio.run(coro)


def request() -> GenerationRequest:
    return GenerationRequest(id="r1", model="glm", messages=[{"role": "user", "content": "hi"}], max_tokens=4)


async def _generate(handle: UpstreamHandle):
    try:
        return await handle.generate(request())
    finally:
        await handle.close()


def test_retries_5xx_with_backoff_and_jitter_then_succeeds():
    app = Scripted(
        [(503, {}, {"error": {"message": "busy"}}, 0), (502, {}, b"bad gateway", 0), (200, {}, OK, 0)]
    )
    waits: list[float] = []

    async def sleep(s):
        waits.append(s)

    with ThreadedServer(app) as server:
        result = run(_generate(UpstreamHandle(settings(f"{server.url}/v1"), f"{server.url}/v1", sleep=sleep)))
    assert result.text == "hello" and result.completion_tokens == 1
    assert app.calls == 3
    assert 0.5 <= waits[0] < 1.5 and 1.0 <= waits[1] < 3.0  # base 1 s, doubling, +-50 % jitter


def test_honours_retry_after_and_gives_up_after_three_tries():
    app = Scripted([(429, {"Retry-After": "3"}, {"error": {"message": "slow down"}}, 0)])
    waits: list[float] = []

    async def sleep(s):
        waits.append(s)

    with ThreadedServer(app) as server, pytest.raises(ServiceUnavailable) as exc:
        run(_generate(UpstreamHandle(settings(server.url), server.url, sleep=sleep)))
    assert waits == [3.0, 3.0] and app.calls == 3
    assert exc.value.headers["Retry-After"] == "3"


def test_client_errors_pass_through_without_retry():
    app = Scripted([(400, {}, {"error": {"message": "max_tokens is too large"}}, 0)])
    with ThreadedServer(app) as server, pytest.raises(ApiError) as exc:
        run(_generate(UpstreamHandle(settings(server.url), server.url, sleep=lambda s: asyncio.sleep(0))))
    assert exc.value.status == 400 and "max_tokens is too large" in exc.value.message and app.calls == 1


def test_unreachable_upstream_is_a_node_failure_after_retries():
    waits: list[float] = []

    async def sleep(s):
        waits.append(s)

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NodeFailure):
        run(_generate(UpstreamHandle(settings(url), url, sleep=sleep)))
    assert len(waits) == 2


def test_read_timeout_answers_504():
    app = Scripted([(200, {}, OK, 2.0)])
    with ThreadedServer(app) as server, pytest.raises(ApiError) as exc:
        run(_generate(UpstreamHandle(settings(server.url, read_timeout=0.3), server.url)))
    assert exc.value.status == 504


def test_connection_pool_bounds_concurrency_and_sends_the_upstream_key(monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY", "sk-upstream-secret")
    app = Scripted([(200, {}, OK, 0.2)])

    async def many(handle):
        try:
            return await asyncio.gather(*(handle.generate(request()) for _ in range(6)))
        finally:
            await handle.close()

    with ThreadedServer(app) as server:
        s = settings(
            server.url, max_connections=2, options={"api_key_env": "UPSTREAM_KEY", "model": "glm-4-9b"}
        )
        results = run(many(UpstreamHandle(s, server.url)))
    assert len(results) == 6 and app.max_in_flight == 2
    assert app.headers[0]["authorization"] == "Bearer sk-upstream-secret"
    assert app.bodies[0]["model"] == "glm-4-9b" and app.bodies[0]["max_tokens"] == 4


@pytest.fixture(scope="module")
def upstream(module_tmp):
    """A real OpenAI-compatible upstream: an autoglm gateway over simulated nodes, with keys."""
    keys = make_keys(module_tmp / "upstream-keys.json")
    config = parse_config(
        json.dumps(
            {
                "model_pool": {"default": "zai-org/glm-4-9b-chat"},
                "models": {
                    "zai-org/glm-4-9b-chat": {
                        "backend": "simulated",
                        "options": {"c": 0.005, "output_tokens": 12},
                    }
                },
                "workers": {"engine": "inline", "count": 2},
            }
        ),
        environ={},
    )
    with ThreadedServer(create_app(config, keys_file=keys.file)) as server:
        yield server, keys


@pytest.fixture(scope="module")
def gateway(upstream, module_tmp):
    """examples/upstream.yaml in front of that upstream, plus a second endpoint that is down."""
    server, upstream_keys = upstream
    keys = make_keys(module_tmp / "gateway-keys.json")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    env = pytest.MonkeyPatch()
    env.setenv("UPSTREAM_API_KEY", upstream_keys.full)
    config = load_config(
        REPO_ROOT / "examples" / "upstream.yaml",
        environ={"AUTOGLM_MODELS__GLM-4-9B-CHAT__OPTIONS__ENDPOINTS": f"[{dead}, {server.url}/v1]"},
    )
    with ThreadedServer(create_app(config, keys_file=keys.file)) as front:
        yield front, keys
    env.undo()


def test_gateway_in_front_of_an_upstream_gateway(gateway):
    front, keys = gateway
    api = openai.OpenAI(base_url=f"{front.url}/v1", api_key=keys.full, max_retries=0)
    reply = api.chat.completions.create(
        model="glm-4-9b-chat", messages=[{"role": "user", "content": "a b c"}], max_tokens=5
    )
    assert reply.choices[0].message.content == "simulated output from the autoglm"
    assert (  # passthrough: the client sees the upstream's answer as it is, its model name too
        reply.model == "zai-org/glm-4-9b-chat"
        and reply.usage.prompt_tokens == 3
        and reply.usage.completion_tokens == 5
    )

    stream = api.chat.completions.create(
        model="glm-4-9b-chat",
        messages=[{"role": "user", "content": "x"}],
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == reply.choices[0].message.content
    )
    assert chunks[-1].usage.completion_tokens == 5

    completion = api.completions.create(model="glm-4-9b-chat", prompt="x", max_tokens=3)
    assert completion.choices[0].text == "simulated output from"


def test_the_dead_endpoint_is_failed_and_never_used(gateway):
    front, keys = gateway
    api = openai.OpenAI(base_url=f"{front.url}/v1", api_key=keys.full, max_retries=0)
    for _ in range(4):
        api.chat.completions.create(
            model="glm-4-9b-chat", messages=[{"role": "user", "content": "x"}], max_tokens=1
        )
    nodes = httpx.get(f"{front.url}/readyz").json()["nodes"]
    states = sorted((n["state"], n["kind"]) for n in nodes)
    assert states == [("failed", "upstream"), ("ready", "upstream")]
    failed = next(n for n in nodes if n["state"] == "failed")
    assert "ConnectFailed" in failed["error"] and "refused" in failed["error"]
