"""Backoff with jitter, Retry-After, and when to give up (a fake clock: no real waiting)."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from autoglm_cli.retry import RetryPolicy, parse_retry_after, retry_call


class Flaky(Exception):
    def __init__(self, retry_after=None):
        super().__init__("flaky")
        self.retry_after = retry_after


def test_delays_double_with_equal_jitter_and_a_cap():
    policy = RetryPolicy(base=1.0, cap=5.0, jitter=0.5)
    assert [policy.delay(n, rand=lambda: 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.5]
    assert [policy.delay(n, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


def test_retry_after_wins_when_longer_and_is_capped():
    policy = RetryPolicy(base=1.0, max_retry_after=60)
    assert policy.delay(1, retry_after=7, rand=lambda: 1.0) == 7
    assert policy.delay(1, retry_after=0, rand=lambda: 1.0) == 1.0
    assert policy.delay(1, retry_after=3600, rand=lambda: 1.0) == 60


def test_parse_retry_after_seconds_and_http_dates():
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after(formatdate(1_000_030, usegmt=True), now=1_000_000) == pytest.approx(30)
    assert parse_retry_after(formatdate(1_000_000, usegmt=True), now=1_000_030) == 0


def test_retry_call_retries_then_succeeds():
    calls, waits = [], []

    def fn():
        calls.append(1)
        if len(calls) < 3:
            raise Flaky(retry_after=4 if len(calls) == 2 else None)
        return "done"

    result = retry_call(
        fn,
        policy=RetryPolicy(tries=3),
        retryable=lambda e: isinstance(e, Flaky),
        sleep=waits.append,
        rand=lambda: 0.5,
    )
    assert result == "done" and waits == [0.75, 4]


def test_retry_call_gives_up_after_the_tries_and_on_other_errors():
    waits = []

    def always():
        raise Flaky()

    with pytest.raises(Flaky):
        retry_call(always, policy=RetryPolicy(tries=3), retryable=lambda e: True, sleep=waits.append)
    assert len(waits) == 2

    def broken():
        raise ValueError("not transient")

    with pytest.raises(ValueError):
        retry_call(broken, retryable=lambda e: isinstance(e, Flaky), sleep=waits.append)
    assert len(waits) == 2
