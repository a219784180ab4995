"""Continuous batching end to end: `autoglm serve` (uvicorn) over a real Dask worker running a
tiny model built here, driven by the official `openai` client.

Overlap is shown by what the worker reports (its batch: `running`, `max_running`,
`cancelled`, read with a Dask client from the worker itself), never by timing. An
"anchor" stream that would run for thousands of tokens keeps a batch alive while
other requests join it; it is closed (cancelled) when the test is done with it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from autoglm_cli.testing.servers import ServeProcess
from tests.runtime.conftest import write_config

pytest.importorskip("transformers")
pytestmark = [pytest.mark.transformers, pytest.mark.slow]

MAX_BATCH = 16
PROMPTS = [
    "Hello",
    "The quick brown fox",
    "Weights are fetched",
    "Hi there",
    "GLM models",
    "user",
    "fox",
    "Hi",
]


@pytest.fixture(scope="module")
def gateway(module_tmp):
    from autoglm_cli.testing.tiny_model import build_tiny_model

    model = build_tiny_model(module_tmp / "tiny", context=8192, greedy_never_ends=True)
    config = write_config(
        module_tmp / "autoglm.yaml",
        {
            "model_pool": {"default": "tiny", "backup": None},
            "scheduler": "static",
            "models": {
                "tiny": {"backend": "transformers", "source": str(model), "options": {"device": "cpu"}}
            },
            "workers": {"engine": "dask", "count": 1, "max_batch": MAX_BATCH, "control_interval": "0.5s"},
            "gateway": {"auth": False},
        },
    )
    with ServeProcess(config, log=module_tmp / "serve.log", ready_timeout=120) as server:
        yield server


@pytest.fixture(scope="module")
def worker(gateway):
    """A Dask client on the gateway's cluster: reads the worker's own report of its batch."""
    from distributed import Client

    address = httpx.get(f"{gateway.url}/readyz").json()["cluster"]["scheduler"]
    with Client(address, timeout="30s") as client:
        yield client


def batch(worker) -> dict:
    from autoglm_cli.runtime.workers.plugin import worker_capacity

    (reply,) = worker.run(worker_capacity).values()
    return reply["tiny"]["batch"]


def wait_for(worker, check, what: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stats = batch(worker)
        if check(stats):
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker never reported {what}: {stats}")
        time.sleep(0.05)


def api(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


def ask(gateway, prompt: str, **kwargs):
    kwargs.setdefault("temperature", 0)
    return api(gateway).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": prompt}], **kwargs
    )


def concurrently(work, prompts) -> dict:
    with ThreadPoolExecutor(len(prompts)) as pool:
        return dict(zip(prompts, pool.map(work, prompts), strict=True))


def stream_text(gateway, prompt: str, **kwargs) -> tuple[str, str | None]:
    text, finish = "", None
    for chunk in ask(gateway, prompt, stream=True, **kwargs):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return text, finish


class Anchor:
    """A stream that would run for thousands of tokens, in a thread, until `close()`."""

    def __init__(self, gateway, prompt: str = "Hello") -> None:
        self.started, self.stop, self.text = threading.Event(), threading.Event(), ""
        self.thread = threading.Thread(target=self._run, args=(gateway, prompt), daemon=True)
        self.thread.start()
        assert self.started.wait(60), "the anchor stream never started"

    def _run(self, gateway, prompt: str) -> None:
        stream = ask(gateway, prompt, stream=True, max_tokens=7000)
        with contextlib.closing(stream):
            for chunk in stream:
                for choice in chunk.choices:
                    self.text += choice.delta.content or ""
                if self.text:
                    self.started.set()
                if self.stop.is_set():
                    return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


@contextlib.contextmanager
def anchored(gateway, worker):
    """An anchor running for the whole block; afterwards, its cancellation reached the worker."""
    cancelled = batch(worker)["cancelled"]
    anchor = Anchor(gateway)
    try:
        yield anchor
    finally:
        anchor.close()
    wait_for(worker, lambda s: s["cancelled"] > cancelled and s["running"] == 0, "the anchor cancelled")


def test_the_node_advertises_its_batch_as_its_capacity(gateway, worker):
    (node,) = httpx.get(f"{gateway.url}/readyz").json()["nodes"]
    assert node["state"] == "ready" and node["capacity"] == MAX_BATCH
    from autoglm_cli.runtime.workers.plugin import worker_capacity

    (reply,) = worker.run(worker_capacity).values()
    assert reply["tiny"]["max_batch"] == MAX_BATCH and reply["tiny"]["kv_cache_tokens"] > 0


def test_concurrent_streams_run_in_one_batch_and_each_gets_its_own_answer(gateway, worker):
    expected = {p: ask(gateway, p, max_tokens=24).choices[0].message.content for p in PROMPTS}
    # Long streams: none can end before all have started, so all are in the batch at once.
    first_chunks = threading.Barrier(len(PROMPTS) + 1)
    release = threading.Event()

    def long_stream(prompt: str) -> str:
        text, waited = "", False
        stream = ask(gateway, prompt, stream=True, max_tokens=7000)
        with contextlib.closing(stream):
            for chunk in stream:
                text += "".join(c.delta.content or "" for c in chunk.choices)
                if text and not waited:
                    waited = True
                    first_chunks.wait(120)
                if release.is_set() and len(text) >= len(expected[prompt]):
                    return text
        return text

    before = batch(worker)["cancelled"]
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        futures = {p: pool.submit(long_stream, p) for p in PROMPTS}
        first_chunks.wait(120)
        now = batch(worker)
        release.set()
        texts = {p: f.result(120) for p, f in futures.items()}
    assert now["running"] == len(PROMPTS) and now["max_running"] >= len(PROMPTS)
    for prompt, text in texts.items():  # greedy: each stream's text starts with its lone answer
        assert text.startswith(expected[prompt]), prompt
    wait_for(worker, lambda s: s["cancelled"] == before + len(PROMPTS) and s["running"] == 0, "8 cancels")

    # Short streams, all at once: every one exactly its lone answer.
    results = concurrently(lambda p: stream_text(gateway, p, max_tokens=24), PROMPTS)
    assert results == {p: (expected[p], "length") for p in PROMPTS}


def test_cancelling_one_stream_leaves_the_others_in_its_batch_intact(gateway, worker):
    expected = {p: ask(gateway, p, max_tokens=200).choices[0].message.content for p in PROMPTS[:3]}
    started = threading.Barrier(len(expected) + 1)

    def stream(prompt: str) -> tuple[str, str | None]:
        text, finish = "", None
        for chunk in ask(gateway, prompt, stream=True, max_tokens=200):
            for choice in chunk.choices:
                if not text and choice.delta.content:
                    started.wait(60)  # all three are generating: now the anchor goes
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
        return text, finish

    with anchored(gateway, worker) as anchor, ThreadPoolExecutor(len(expected)) as pool:
        futures = {p: pool.submit(stream, p) for p in expected}
        started.wait(60)
        anchor.close()  # cancelled while the three are in its batch
        results = {p: f.result(120) for p, f in futures.items()}
    assert results == {p: (text, "length") for p, text in expected.items()}


def test_a_failing_sequence_fails_alone(gateway, worker):
    expected = ask(gateway, "Hi there", max_tokens=20).choices[0].message.content
    with anchored(gateway, worker) as anchor:
        with pytest.raises(openai.BadRequestError) as seed:
            ask(gateway, "Hello", temperature=1.0, seed=2**70, max_tokens=5)
        with pytest.raises(openai.BadRequestError) as long_prompt:
            ask(gateway, "word " * 9000, max_tokens=5)
        assert ask(gateway, "Hi there", max_tokens=20).choices[0].message.content == expected
        assert anchor.thread.is_alive() and batch(worker)["running"] >= 1  # the anchor goes on
    assert "seed" in seed.value.message and "at most 8192" in long_prompt.value.message


def test_seeded_sampling_gives_the_same_text_alone_and_in_a_batch(gateway, worker):
    seeds = {p: 40 + i for i, p in enumerate(PROMPTS[:4])}

    def sampled(prompt: str) -> str:
        return (
            ask(gateway, prompt, temperature=1.0, top_p=0.9, seed=seeds[prompt], max_tokens=16)
            .choices[0]
            .message.content
        )

    alone = {p: sampled(p) for p in seeds}
    with anchored(gateway, worker):
        together = concurrently(sampled, list(seeds))
    assert together == alone


def test_a_non_streaming_client_that_hangs_up_cancels_its_generation(gateway, worker):
    before = batch(worker)["cancelled"]
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 7000}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=httpx.Timeout(5, read=1.0))
    wait_for(worker, lambda s: s["cancelled"] == before + 1 and s["running"] == 0, "the request cancelled")
