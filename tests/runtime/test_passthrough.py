"""Fidelity of the engine passthrough: the official `openai` client, a gateway, and a recording
upstream (the fake engine). Every field arrives unchanged but `model`; every streamed event
comes back byte for byte; the same through the fallback path (default endpoint down)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from autoglm_cli.config import parse_config
from autoglm_cli.runtime.gateway import create_app
from autoglm_cli.testing.fake_engine import FakeEngine
from autoglm_cli.testing.servers import ThreadedServer, free_port

UPSTREAM_NAME = "zai-org/glm-4-9b-chat"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
HISTORY = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    {"role": "user", "content": "And tomorrow?"},
]
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"answer": {"type": "string"}}},
        "strict": True,
    },
}
EVERYTHING = dict(
    messages=HISTORY,
    tools=TOOLS,
    tool_choice={"type": "function", "function": {"name": "get_weather"}},
    logprobs=True,
    top_logprobs=2,
    presence_penalty=0.5,
    frequency_penalty=0.25,
    logit_bias={"42": -100},
    n=2,
    user="user-7",
    max_tokens=20,
    temperature=0.3,
    seed=7,
    extra_body={"guided_json": {"type": "object"}, "chat_template_kwargs": {"enable_thinking": False}},
)


def _config(default_url: str, backup_url: str | None = None) -> object:
    models = {
        "glm": {"backend": "openai", "source": default_url, "options": {"model": UPSTREAM_NAME}},
    }
    pool = {"default": "glm", "backup": None}
    if backup_url is not None:
        models["glm-backup"] = {
            "backend": "openai",
            "source": backup_url,
            "options": {"model": "backup-engine"},
        }
        pool["backup"] = "glm-backup"
    return parse_config(
        json.dumps(
            {
                "model_pool": pool,
                "models": models,
                "scheduler": "static",
                "gateway": {"auth": False, "max_attempts": 1},
                "retry": {"tries": 1},
            }
        ),
        environ={},
    )


@pytest.fixture(scope="module")
def engine():
    fake = FakeEngine(model=UPSTREAM_NAME, output_tokens=5)
    with ThreadedServer(fake) as server:
        yield fake, server


@pytest.fixture(scope="module")
def gateway(engine):
    _, server = engine
    with ThreadedServer(create_app(_config(f"{server.url}/v1"))) as front:
        yield front


@pytest.fixture(scope="module")
def fallback_gateway(engine):
    """The default model's only endpoint is down: every request falls back to the backup engine."""
    _, server = engine
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with ThreadedServer(create_app(_config(dead, f"{server.url}/v1"))) as front:
        yield front


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def _sent_fields(kwargs: dict) -> dict:
    fields = {k: v for k, v in kwargs.items() if k != "extra_body"}
    return {**fields, **kwargs.get("extra_body", {})}


@pytest.mark.parametrize("via", ["gateway", "fallback_gateway"])
def test_every_field_arrives_unchanged_but_the_model(engine, via, request):
    fake, _ = engine
    front = request.getfixturevalue(via)
    before = len(fake.requests)
    reply = _client(front).chat.completions.create(model="glm", **EVERYTHING)
    received = fake.requests[before].body
    expected_model = UPSTREAM_NAME if via == "gateway" else "backup-engine"
    assert received == {**_sent_fields(EVERYTHING), "model": expected_model}
    assert len(reply.choices) == 2
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert reply.choices[0].finish_reason == "tool_calls"
    assert reply.choices[0].logprobs.content[0].top_logprobs[1].token == "alt0"


@pytest.mark.parametrize("via", ["gateway", "fallback_gateway"])
def test_streamed_tool_calls_come_back_byte_for_byte(engine, via, request):
    fake, _ = engine
    front = request.getfixturevalue(via)
    body = {
        "model": "glm",
        "messages": HISTORY,
        "tools": TOOLS,
        "logprobs": True,
        "top_logprobs": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    before = len(fake.responses)
    with httpx.stream("POST", f"{front.url}/v1/chat/completions", json=body, timeout=30) as response:
        relayed = b"".join(response.iter_bytes())
        headers = response.headers
    assert response.status_code == 200
    assert relayed == fake.responses[before]  # exactly what the engine wrote
    assert relayed.endswith(b"data: [DONE]\n\n") and b'"tool_calls"' in relayed
    if via == "fallback_gateway":
        assert headers["x-autoglm-fallback"] == "backup" and headers["x-autoglm-fallback-from"] == "glm"


def test_the_openai_client_reads_a_relayed_stream(gateway):
    stream = _client(gateway).chat.completions.create(
        model="glm",
        messages=HISTORY,
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(arguments) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage.completion_tokens == 3


def test_response_format_and_non_streamed_json_byte_for_byte(engine, gateway):
    fake, _ = engine
    before = len(fake.responses)
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "glm", "messages": HISTORY[:2], "response_format": SCHEMA},
        timeout=30,
    )
    assert response.status_code == 200 and response.content == fake.responses[before]
    assert fake.requests[-1].body["response_format"] == SCHEMA
    assert json.loads(response.json()["choices"][0]["message"]["content"]) == {"answer": "fox"}


def test_completions_are_relayed_too(engine, gateway):
    fake, _ = engine
    before = len(fake.responses)
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/completions",
        json={"model": "glm", "prompt": "Once", "max_tokens": 3, "stream": True, "echo": False, "best_of": 1},
        timeout=30,
    ) as response:
        relayed = b"".join(response.iter_bytes())
    assert relayed == fake.responses[before]
    assert fake.requests[-1].body["best_of"] == 1 and fake.requests[-1].body["echo"] is False


def test_an_engine_refusal_reaches_the_client_as_the_engine_wrote_it(gateway):
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "glm", "messages": HISTORY[:2], "max_tokens": 100000},
        timeout=30,
    )
    assert response.status_code == 400
    body = response.json()
    assert body["object"] == "error" and "maximum context length is 4096" in body["message"]


def test_a_fallback_to_an_in_process_backup_refuses_what_it_cannot_honour():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = parse_config(
        json.dumps(
            {
                "model_pool": {"default": "glm", "backup": "small"},
                "models": {
                    "glm": {"backend": "openai", "source": dead},
                    "small": {"backend": "simulated", "options": {"c": 0.001, "output_tokens": 2}},
                },
                "workers": {"engine": "inline", "count": 1},
                "gateway": {"auth": False},
                "retry": {"tries": 1},
            }
        ),
        environ={},
    )
    with ThreadedServer(create_app(config)) as front:
        plain = httpx.post(
            f"{front.url}/v1/chat/completions", json={"model": "glm", "messages": HISTORY[:2]}, timeout=30
        )
        assert plain.status_code == 200 and plain.headers["x-autoglm-fallback"] == "backup"
        tools = httpx.post(
            f"{front.url}/v1/chat/completions",
            json={"model": "glm", "messages": HISTORY[:2], "tools": TOOLS},
            timeout=30,
        )
    assert tools.status_code == 400
    assert (
        tools.json()["error"]["code"] == "unsupported_parameter" and tools.json()["error"]["param"] == "tools"
    )
