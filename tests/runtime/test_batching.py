"""Continuous batching in the transformers backend, with a tiny real model built in the test.

Sequences join a running batch between decode steps (made certain without timing:
the first sequence's stream callback submits the others once it has text) and each
must produce exactly what it produces alone: same text, same finish, same counts.
"""

from __future__ import annotations

import threading

import pytest

from autoglm_cli.runtime.backends.base import BackendSettings, GenerationRequest, GenerationResult
from autoglm_cli.runtime.errors import InvalidRequest

pytest.importorskip("transformers")
pytestmark = [pytest.mark.transformers]

PROMPTS = ["Hello", "The quick brown fox", "Weights are fetched", "Hi there", "GLM models", "user"]


@pytest.fixture(scope="module")
def tiny_model(module_tmp):
    from autoglm_cli.testing.tiny_model import build_tiny_model

    return build_tiny_model(module_tmp / "tiny")


def make_backend(path, **settings):
    from autoglm_cli.runtime.backends.hf_transformers import TransformersBackend

    backend = TransformersBackend(
        BackendSettings(model="tiny", backend="transformers", source=str(path), **settings)
    )
    backend.load()
    return backend


@pytest.fixture(scope="module")
def backend(tiny_model):
    backend = make_backend(tiny_model)
    yield backend
    backend.close()


def chat(content: str, rid: str = "r", **kwargs) -> GenerationRequest:
    kwargs.setdefault("max_tokens", 16)
    return GenerationRequest(id=rid, model="tiny", messages=[{"role": "user", "content": content}], **kwargs)


class Outcome:
    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.result: GenerationResult | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def on_done(self, result, error) -> None:
        self.result, self.error = result, error
        self.done.set()


def run_together(backend, requests, *, join_after: int = 1, stops=None, emits=None) -> list[Outcome]:
    """The first request starts alone; the rest join its batch once it has emitted `join_after` pieces."""
    outcomes = [Outcome() for _ in requests]
    stops = stops or [lambda: False] * len(requests)
    joined = threading.Event()

    def first_emit(piece: str) -> None:
        outcomes[0].pieces.append(piece)
        if len(outcomes[0].pieces) >= join_after and not joined.is_set():
            joined.set()
            for i in range(1, len(requests)):
                emit = (emits or {}).get(i, outcomes[i].pieces.append)
                backend.submit(requests[i], emit, stops[i], outcomes[i].on_done)

    backend.submit(requests[0], first_emit, stops[0], outcomes[0].on_done)
    for outcome in outcomes:
        assert outcome.done.wait(60)
    assert joined.is_set(), "the first sequence ended before the others could join"
    return outcomes


def alone(backend, request) -> GenerationResult:
    return backend.generate(request, None, lambda: False)


def test_sequences_that_join_a_running_batch_get_what_they_get_alone(backend):
    requests = [chat(p, f"r{i}", max_tokens=24 - i, temperature=0) for i, p in enumerate(PROMPTS)]
    expected = [alone(backend, r) for r in requests]
    before = backend.batch_stats()["max_running"]
    outcomes = run_together(backend, requests)
    for outcome, want in zip(outcomes, expected, strict=True):
        assert outcome.error is None
        assert outcome.result == want
        assert "".join(outcome.pieces) == want.text
    assert backend.batch_stats()["max_running"] == len(requests) > before


def test_seeded_sampling_is_the_same_whatever_else_is_in_the_batch(backend):
    sampled = [chat(p, f"s{i}", temperature=1.0, top_p=0.9, seed=100 + i) for i, p in enumerate(PROMPTS[:4])]
    expected = [alone(backend, r).text for r in sampled]
    companions = [chat(p, f"c{i}", temperature=1.3, seed=i) for i, p in enumerate(PROMPTS)]
    outcomes = run_together(backend, [companions[0], *sampled, *companions[1:]])
    assert [o.result.text for o in outcomes[1:5]] == expected


def test_cancelling_one_sequence_leaves_the_others_intact(backend):
    requests = [chat(p, f"x{i}", max_tokens=20, temperature=0) for i, p in enumerate(PROMPTS[:4])]
    expected = [alone(backend, r) for r in requests]
    cancel = threading.Event()
    stops = [lambda: False, cancel.is_set, lambda: False, lambda: False]
    cancel.set()  # asked before it ran: it never takes a token
    outcomes = run_together(backend, requests, stops=stops)
    assert outcomes[1].result.finish_reason == "cancelled"
    for i in (0, 2, 3):
        assert outcomes[i].result == expected[i]


def test_a_failing_sequence_fails_alone(backend):
    def broken_emit(piece: str) -> None:
        raise RuntimeError("the client's buffer is gone")

    requests = [
        chat("Hello", "ok0", max_tokens=20, temperature=0),
        chat("Hi there", "bad-emit", temperature=0),
        chat("word " * 600, "too-long"),
        chat("GLM models", "bad-seed", temperature=1.0, seed=2**70),
        chat("The quick brown fox", "ok4", max_tokens=12, temperature=0),
    ]
    expected = {0: alone(backend, requests[0]), 4: alone(backend, requests[4])}
    outcomes = run_together(backend, requests, emits={1: broken_emit})
    assert isinstance(outcomes[1].error, RuntimeError)
    assert isinstance(outcomes[2].error, InvalidRequest) and "at most 512" in str(outcomes[2].error)
    assert isinstance(outcomes[3].error, InvalidRequest) and outcomes[3].error.param == "seed"
    for i, want in expected.items():
        assert outcomes[i].error is None and outcomes[i].result == want
    assert alone(backend, requests[0]) == expected[0]  # the loop still serves


def test_stop_sequences_and_max_tokens_hold_per_sequence(backend):
    full = alone(backend, chat("Hello", "f", max_tokens=16, temperature=0)).text
    stop = full[4:7]
    assert stop.strip()
    requests = [
        chat("Hi there", "a", max_tokens=20, temperature=0),
        chat("Hello", "b", max_tokens=16, temperature=0, stop=[stop]),
        chat("Hello", "c", max_tokens=3, temperature=0),
    ]
    outcomes = run_together(backend, requests)
    assert outcomes[1].result.text == full[: full.index(stop)] and outcomes[1].result.finish_reason == "stop"
    assert outcomes[2].result.completion_tokens == 3 and outcomes[2].result.finish_reason == "length"


def test_the_token_budget_limits_the_batch(tiny_model):
    one = len(make_prompt_ids(tiny_model)) + 8
    backend = make_backend(tiny_model, max_batch=8, max_batch_tokens=2 * one)
    try:
        requests = [chat("Hello", f"t{i}", max_tokens=8, temperature=0) for i in range(5)]
        outcomes = run_together(backend, requests)
        assert all(o.error is None and o.result.completion_tokens > 0 for o in outcomes)
        assert backend.batch_stats()["max_running"] == 2
        assert backend.batch_stats()["kv_cache_tokens"] == 2 * one
    finally:
        backend.close()


def test_max_batch_one_runs_one_sequence_at_a_time(tiny_model):
    backend = make_backend(tiny_model, max_batch=1)
    try:
        outcomes = run_together(backend, [chat(p, p, temperature=0) for p in PROMPTS[:3]])
        assert all(o.error is None for o in outcomes)
        assert backend.batch_stats()["max_running"] == 1
    finally:
        backend.close()


def make_prompt_ids(path) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    ids = tok.apply_chat_template([{"role": "user", "content": "Hello"}], add_generation_prompt=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
