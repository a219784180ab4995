"""The transformers backend with a tiny real model: directly, from the HF cache, and behind `serve`."""

from __future__ import annotations

import shutil

import httpx
import openai
import pytest

from autoglm_cli.runtime.backends.base import BackendSettings, GenerationRequest
from autoglm_cli.runtime.errors import InvalidRequest
from autoglm_cli.testing.servers import ServeProcess
from tests.conftest import REPO_ROOT

pytest.importorskip("transformers")
pytestmark = [pytest.mark.transformers, pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny_model(module_tmp):
    from autoglm_cli.testing.tiny_model import build_tiny_model

    return build_tiny_model(module_tmp / "tiny")


@pytest.fixture(scope="module")
def backend(tiny_model):
    from autoglm_cli.runtime.backends.hf_transformers import TransformersBackend

    b = TransformersBackend(BackendSettings(model="tiny", backend="transformers", source=str(tiny_model)))
    b.load()
    return b


def chat(content: str = "Hello", **kwargs) -> GenerationRequest:
    return GenerationRequest(id="r", model="tiny", messages=[{"role": "user", "content": content}], **kwargs)


def test_chat_uses_the_tokenizer_chat_template(backend):
    expected = backend.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello"}], add_generation_prompt=True, tokenize=True
    )
    expected = expected["input_ids"] if hasattr(expected, "keys") else expected
    assert backend.prompt_ids(chat()) == list(expected)
    text = backend.tokenizer.decode(backend.prompt_ids(chat()))
    assert "<|user|>" in text and text.rstrip().endswith("<|assistant|>")


def test_greedy_generation_is_deterministic_and_streams_the_same_text(backend):
    pieces: list[str] = []
    streamed = backend.generate(chat(max_tokens=12, temperature=0), pieces.append, lambda: False)
    whole = backend.generate(chat(max_tokens=12, temperature=0), None, lambda: False)
    assert streamed.text == whole.text == "".join(pieces)
    assert len(pieces) > 1
    assert streamed.completion_tokens == 12 and streamed.finish_reason == "length"
    assert streamed.prompt_tokens == len(backend.prompt_ids(chat()))


def test_seeded_sampling_is_reproducible(backend):
    first = backend.generate(chat(max_tokens=8, temperature=1.0, top_p=0.9, seed=7), None, lambda: False)
    again = backend.generate(chat(max_tokens=8, temperature=1.0, top_p=0.9, seed=7), None, lambda: False)
    assert first.text == again.text


def test_stop_sequence_cuts_the_text(backend):
    full = backend.generate(chat(max_tokens=12, temperature=0), None, lambda: False).text
    stop = full[4:7]
    assert stop.strip()
    cut = backend.generate(chat(max_tokens=12, temperature=0, stop=[stop]), None, lambda: False)
    assert cut.text == full[: full.index(stop)] and cut.finish_reason == "stop"


def test_cancellation_stops_generation(backend):
    result = backend.generate(chat(max_tokens=50, temperature=0), None, lambda: True)
    assert result.finish_reason == "cancelled" and result.completion_tokens <= 1


def test_a_prompt_longer_than_the_context_is_a_400(backend):
    with pytest.raises(InvalidRequest, match="at most 512"):
        backend.generate(chat("word " * 600), None, lambda: False)


def test_loads_from_the_hugging_face_cache_by_repo_id(tiny_model, tmp_path):
    from autoglm_cli.runtime.backends.hf_transformers import ModelLoadError, TransformersBackend

    # The standard cache layout: models--ORG--NAME/{refs/main, snapshots/REV/...}
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--zai-org--tiny-glm"
    shutil.copytree(tiny_model, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    settings = BackendSettings(
        model="glm", backend="transformers", source="zai-org/tiny-glm", cache_dir=str(tmp_path / "hub")
    )
    backend = TransformersBackend(settings)
    backend.load()
    assert backend.generate(chat(max_tokens=3, temperature=0), None, lambda: False).completion_tokens == 3

    missing = TransformersBackend(
        BackendSettings(
            model="x", backend="transformers", source="THUDM/not-cached", cache_dir=str(tmp_path / "hub")
        )
    )
    with pytest.raises(ModelLoadError, match="fetch-weights"):
        missing.load()


def test_serve_examples_transformers_yaml_with_the_tiny_model_and_a_broken_backup(tiny_model, module_tmp):
    """examples/transformers.yaml, pointed at the tiny model through environment overrides, plus a
    backup model whose directory is missing: two Dask workers, one loads each."""
    config = REPO_ROOT / "examples" / "transformers.yaml"
    env = {
        "AUTOGLM_MODELS__GLM-4-9B-CHAT__SOURCE": str(tiny_model),
        "AUTOGLM_MODELS__BROKEN__BACKEND": "transformers",
        "AUTOGLM_MODELS__BROKEN__SOURCE": str(module_tmp / "no-such-model"),
        "AUTOGLM_MODEL_POOL__BACKUP": "broken",
        "AUTOGLM_WORKERS__COUNT": "2",
        "AUTOGLM_WORKERS__CONTROL_INTERVAL": "0.5s",
        "AUTOGLM_GATEWAY__AUTH": "false",
    }
    with ServeProcess(config, env=env, log=module_tmp / "serve.log", ready_timeout=120) as server:
        api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        reply = api.chat.completions.create(
            model="glm-4-9b-chat",
            messages=[{"role": "user", "content": "Hello"}],
            max_tokens=6,
            temperature=0,
        )
        assert reply.usage.completion_tokens == 6 and reply.choices[0].finish_reason == "length"
        stream = api.chat.completions.create(
            model="glm-4-9b-chat",
            messages=[{"role": "user", "content": "Hello"}],
            max_tokens=6,
            temperature=0,
            stream=True,
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert streamed == reply.choices[0].message.content

        # The broken model's node is failed, with the load error in /readyz and in the log.
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            nodes = httpx.get(f"{server.url}/readyz").json()["nodes"]
            broken = [n for n in nodes if n["model"] == "broken"]
            if broken and broken[0]["state"] == "failed":
                break
            time.sleep(0.2)
        assert broken[0]["state"] == "failed" and "no-such-model" in broken[0]["error"]
        assert "does not exist" in broken[0]["error"]
        with pytest.raises(openai.InternalServerError) as exc:
            api.chat.completions.create(model="broken", messages=[{"role": "user", "content": "x"}])
        assert exc.value.status_code == 503 and "does not exist" in exc.value.message
    assert "failed to load" in server.output() and "no-such-model" in server.output()
