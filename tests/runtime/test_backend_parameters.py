"""The in-process backends refuse what they cannot honour (400 `unsupported_parameter`), bound
`max_tokens` by the context as vLLM does, and `GET /v1/models/{id}` answers OpenAI's way."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from autoglm_cli.config import parse_config
from autoglm_cli.runtime.backends.base import BackendSettings
from autoglm_cli.runtime.backends.params import context_length, max_tokens_for
from autoglm_cli.runtime.errors import InvalidRequest
from autoglm_cli.runtime.gateway import create_app
from autoglm_cli.testing.servers import ThreadedServer


@pytest.fixture(scope="module")
def server():
    config = parse_config(
        json.dumps(
            {
                "model_pool": {"default": "sim"},
                "models": {
                    "sim": {
                        "backend": "simulated",
                        "options": {"c": 0.01, "output_tokens": 4, "context_length": 64},
                    },
                    "zai-org/glm-4-9b-chat": {"backend": "simulated", "options": {"c": 0.01}},
                    "short": {
                        "backend": "simulated",
                        "options": {"c": 0.0001, "output_tokens": 100, "context_length": 16},
                    },
                },
                "workers": {"engine": "inline", "count": 2},
                "gateway": {"auth": False},
            }
        ),
        environ={},
    )
    with ThreadedServer(create_app(config)) as running:
        yield running


def _post(server, **body):
    return httpx.post(
        f"{server.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], **body}
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"guided_json": {"type": "object"}}, "guided_json"),
        ({"n": 3}, "n"),
        ({"messages": [{"role": "tool", "tool_call_id": "c", "content": "1"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}]},
            "messages[0].tool_calls",
        ),
    ],
)
def test_what_the_in_process_backend_cannot_honour_is_refused_by_name(server, body, param):
    reply = _post(server, **body)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert (
        error["code"] == "unsupported_parameter"
        and error["param"] == param
        and f"`{param}`" in error["message"]
    )


def test_values_that_change_nothing_pass(server):
    reply = _post(
        server,
        logprobs=False,
        presence_penalty=0,
        tools=[],
        tool_choice="none",
        response_format={"type": "text"},
        n=1,
        user="u-1",
        stream_options=None,
    )
    assert reply.status_code == 200, reply.text


def test_max_tokens_over_the_context_is_a_400_as_vllm_answers(server):
    reply = _post(server, max_tokens=65)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "max_tokens" and "maximum context length is 64 tokens" in error["message"]
    assert _post(server, max_tokens=64).status_code == 200


def test_models_by_id_with_the_official_client(server):
    api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    assert api.models.retrieve("zai-org/glm-4-9b-chat").id == "zai-org/glm-4-9b-chat"
    with pytest.raises(openai.NotFoundError) as exc:
        api.models.retrieve("nope")
    assert exc.value.body["code"] == "model_not_found"


def test_context_length_from_config_json_and_max_tokens_defaults(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    settings = BackendSettings(model="m", backend="transformers", source=str(tmp_path))
    assert context_length(settings) == 2048
    assert max_tokens_for(None, settings, prompt_tokens=48) == 2000  # up to the context
    capped = BackendSettings(
        model="m2", backend="transformers", source=str(tmp_path), options={"max_tokens": 256}
    )
    assert max_tokens_for(None, capped, prompt_tokens=48) == 256  # the config's cap
    assert max_tokens_for(100, capped, prompt_tokens=48) == 100
    with pytest.raises(InvalidRequest):
        max_tokens_for(4096, settings, prompt_tokens=1)
    unknown = BackendSettings(model="s", backend="simulated")
    assert context_length(unknown) is None and max_tokens_for(None, unknown, prompt_tokens=5) is None


def test_without_max_tokens_a_request_runs_up_to_the_context(server):
    reply = _post(server, model="short")
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] == 15  # 16 less the prompt's estimated token
