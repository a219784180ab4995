"""The async retry helper, the simulated backend's cost model and the stop-sequence filter."""

from __future__ import annotations

import pytest

from autoglm_cli.runtime.backends.base import BackendSettings, GenerationRequest, StopFilter
from autoglm_cli.runtime.backends.simulated import SimulatedBackend


def test_async_retry_waits_without_blocking_and_reraises_at_the_end():
    """`call_with_retry_async` (the upstream backend's retries): same policy as the sync one."""
    import asyncio

    from autoglm_cli.retry import RetryPolicy, call_with_retry_async

    waits: list[float] = []
    calls: list[int] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    class Busy(Exception):
        retry_after = 2

    async def flaky():
        calls.append(1)
        raise Busy()

    with pytest.raises(Busy):
        asyncio.run(call_with_retry_async(flaky, retry_if=Busy, sleep=sleep))
    assert len(calls) == 3 and waits == [2, 2]  # Retry-After honoured, 3 tries in all

    outcomes = iter([ConnectionError("reset"), "ok"])

    async def once_flaky():
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    policy = RetryPolicy(random=lambda: 0.5)
    assert (
        asyncio.run(call_with_retry_async(once_flaky, policy=policy, retry_if=ConnectionError, sleep=sleep))
        == "ok"
    )
    assert waits[-1] == 1.0  # base 1 s x (0.5 + 0.5)

    async def broken():
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        asyncio.run(call_with_retry_async(broken, retry_if=ConnectionError, sleep=sleep))


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
