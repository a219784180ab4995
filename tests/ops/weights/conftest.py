"""Fixtures for the weights tests: the fake Hub (real HTTP, real huggingface_hub) and fast retries."""

from __future__ import annotations

import pytest

from autoglm_cli.config import Config, Retry, Weights
from autoglm_cli.testing.hub_server import fake_model_files
from tests.fixtures.hub import hf_cache, hub_server, tiny_hub, tiny_model_dir  # noqa: F401

FAKE_REPO = "zai-org/fake-glm"
SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"


class Sleeps(list):
    """An injected sleep: records the waits instead of waiting (a fake clock for backoff)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    def __bool__(self) -> bool:  # RetryPolicy falls back to time.sleep on a falsy `sleep`
        return True


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def fake_files() -> dict[str, bytes]:
    # Shards of a few chunks each (the engine moves 4 MiB buffers), so a drop lands mid-file.
    return fake_model_files(shard_size=9 * 1024 * 1024 + 123)


@pytest.fixture
def fake_hub(hub_server, fake_files):  # noqa: F811 (the imported fixture)
    hub_server.add_repo(FAKE_REPO, fake_files)
    return hub_server


@pytest.fixture
def config() -> Config:
    return Config(weights=Weights(jobs=2), retry=Retry(tries=3, base=0.01))


@pytest.fixture
def fast_env(monkeypatch):
    """CLI runs: retries without real waiting worth noticing."""
    monkeypatch.setenv("AUTOGLM_RETRY__BASE", "0.01")
    monkeypatch.delenv("HF_TOKEN", raising=False)
