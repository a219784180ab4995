"""`autoglm_cli.retry`, the simulated backend's cost model and the stop-sequence filter."""

from __future__ import annotations

import email.utils

import pytest

from autoglm_cli.retry import Retryable, RetryPolicy, parse_retry_after, retry_call
from autoglm_cli.runtime.backends.base import BackendSettings, GenerationRequest, StopFilter
from autoglm_cli.runtime.backends.simulated import SimulatedBackend


def test_backoff_doubles_from_one_second_with_equal_jitter():
    policy = RetryPolicy()
    assert [policy.delay(i, rng=lambda: 1.0) for i in (1, 2)] == [1.0, 2.0]
    assert [policy.delay(i, rng=lambda: 0.0) for i in (1, 2)] == [0.5, 1.0]
    assert policy.delay(3) is None  # three tries in all


def test_retry_after_wins_and_too_long_a_wait_gives_up():
    policy = RetryPolicy(max_delay=30)
    assert policy.delay(1, retry_after=7) == 7
    assert policy.delay(1, retry_after=120) is None


def test_parse_retry_after_seconds_and_dates():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert parse_retry_after(date, now=lambda: 1_000_000) == pytest.approx(10.0)


def test_retry_call_sleeps_between_tries_and_reraises_at_the_end():
    sleeps: list[float] = []
    calls = []

    def flaky():
        calls.append(1)
        raise Retryable("nope", retry_after=2)

    with pytest.raises(Retryable):
        retry_call(flaky, sleep=sleeps.append)
    assert len(calls) == 3 and sleeps == [2, 2]
    outcomes = iter([Retryable("x"), "ok"])

    def once_flaky():
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    assert retry_call(once_flaky, sleep=sleeps.append, rng=lambda: 1.0) == "ok"
    with pytest.raises(ZeroDivisionError):
        retry_call(lambda: 1 / 0, sleep=sleeps.append)


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def sleep(self, s):
        self.now += s

    def clock(self):
        return self.now


def simulated(**options) -> tuple[SimulatedBackend, FakeTime]:
    t = FakeTime()
    return SimulatedBackend(
        BackendSettings(model="sim", backend="simulated", options=options), sleep=t.sleep, clock=t.clock
    ), t


def test_simulated_service_time_is_a_plus_b_prompt_plus_c_generated():
    backend, t = simulated(a=0.1, b=0.01, c=0.05, output_tokens=100)
    request = GenerationRequest(
        id="r", model="sim", kind="completion", prompt="one two three four", max_tokens=10
    )
    result = backend.generate(request, None, lambda: False)
    assert t.now == pytest.approx(0.1 + 0.01 * 4 + 0.05 * 10)
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (4, 10, "length")
    assert result.text.startswith("simulated output from the autoglm")


def test_simulated_streams_each_token_and_resumes_where_a_dead_node_stopped():
    backend, _ = simulated(output_tokens=6)
    pieces: list[str] = []
    full = backend.generate(
        GenerationRequest(id="r", model="sim", messages=[{"role": "user", "content": "x"}]),
        pieces.append,
        lambda: False,
    )
    assert "".join(pieces) == full.text and len(pieces) == 6 and full.finish_reason == "stop"
    resumed = backend.generate(
        GenerationRequest(
            id="r",
            model="sim",
            messages=[{"role": "user", "content": "x"}],
            resume_text="".join(pieces[:2]),
            resume_tokens=2,
            max_tokens=4,
        ),
        None,
        lambda: False,
    )
    assert "".join(pieces[:2]) + resumed.text == full.text and resumed.completion_tokens == 4


def test_simulated_cancellation():
    backend, _ = simulated(output_tokens=50)
    result = backend.generate(
        GenerationRequest(id="r", model="sim", prompt="x", kind="completion"), None, lambda: True
    )
    assert result.finish_reason == "cancelled" and result.completion_tokens == 0


@pytest.mark.parametrize(
    ("pieces", "stops", "emitted", "stopped"),
    [
        (["hel", "lo wor", "ld"], ["o w"], "hell", True),
        (["abc", "def"], [], "abcdef", False),
        (["ab", "cX", "Yz"], ["XY"], "abc", True),
        (["a", "X", "b"], ["XY"], "aXb", False),
    ],
)
def test_stop_filter_never_emits_part_of_a_stop_sequence(pieces, stops, emitted, stopped):
    f = StopFilter(stops)
    out = "".join(f.feed(p) for p in pieces) + f.flush()
    assert out == emitted == f.text and f.stopped is stopped
