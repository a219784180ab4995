"""The retry helper: exponential backoff, jitter, Retry-After, what is and is not retried."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from autoglm_cli.config import parse_config
from autoglm_cli.errors import ConfigError
from autoglm_cli.retry import RetryPolicy, call_with_retry, parse_retry_after, retry_after_of


class Flaky:
    """Fails `failures` times with `error`, then returns "ok"."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures, self.calls = failures, 0
        self.error = error or ConnectionError("connection reset")

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def policy(waits: list, rand: float = 0.5, **kw) -> RetryPolicy:
    return RetryPolicy(sleep=waits.append, random=lambda: rand, **kw)


def test_defaults_are_the_projects_convention():
    assert (RetryPolicy().tries, RetryPolicy().base) == (3, 1.0)


def test_waits_double_from_the_base():
    waits: list[float] = []
    assert call_with_retry(Flaky(2), policy=policy(waits)) == "ok"
    assert waits == [1.0, 2.0]


@pytest.mark.parametrize(("rand", "expected"), [(0.0, [0.5, 1.0]), (0.999, [1.499, 2.998])])
def test_jitter_spreads_each_wait_between_half_and_one_and_a_half_times(rand, expected):
    waits: list[float] = []
    call_with_retry(Flaky(2), policy=policy(waits, rand))
    assert waits == pytest.approx(expected)


def test_gives_up_after_the_last_try_with_the_last_error():
    waits: list[float] = []
    flaky = Flaky(5)
    with pytest.raises(ConnectionError):
        call_with_retry(flaky, policy=policy(waits))
    assert flaky.calls == 3
    assert len(waits) == 2


def test_errors_that_are_not_transient_are_raised_at_once():
    waits: list[float] = []
    flaky = Flaky(1, ValueError("bad input"))
    with pytest.raises(ValueError):
        call_with_retry(flaky, policy=policy(waits), retry_if=lambda exc: isinstance(exc, ConnectionError))
    assert (flaky.calls, waits) == (1, [])


def test_retry_if_accepts_exception_types():
    waits: list[float] = []
    assert call_with_retry(Flaky(1), policy=policy(waits), retry_if=ConnectionError) == "ok"
    with pytest.raises(KeyError):
        call_with_retry(Flaky(1, KeyError("x")), policy=policy(waits), retry_if=(ConnectionError, OSError))


def test_keyboard_interrupt_is_never_retried():
    waits: list[float] = []
    flaky = Flaky(1, KeyboardInterrupt())  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        call_with_retry(flaky, policy=policy(waits))
    assert flaky.calls == 1


def test_one_wait_is_capped():
    waits: list[float] = []
    call_with_retry(Flaky(3), policy=policy(waits, tries=4, base=10, max_delay=15))
    assert waits == [10.0, 15.0, 15.0]


class _Response:
    def __init__(self, headers: dict) -> None:
        self.headers = headers


class HttpError(Exception):
    def __init__(self, headers: dict) -> None:
        super().__init__("503 Service Unavailable")
        self.response = _Response(headers)


def test_retry_after_seconds_replace_the_backoff():
    waits: list[float] = []
    call_with_retry(Flaky(1, HttpError({"Retry-After": "7"})), policy=policy(waits))
    assert waits == [7.0]


def test_retry_after_date_and_cap():
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(42)
    waits: list[float] = []
    call_with_retry(Flaky(1, HttpError({"Retry-After": "99999"})), policy=policy(waits, max_retry_after=60))
    assert waits == [60.0]


@pytest.mark.parametrize(
    ("value", "expected"), [("3", 3.0), ("-4", 0.0), ("soon", None), (None, None), (2, 2.0)]
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected


def test_retry_after_of_reads_an_attribute_or_the_response():
    err = ConnectionError("x")
    err.retry_after = "5"  # type: ignore[attr-defined]
    assert retry_after_of(err) == 5.0
    assert retry_after_of(HttpError({})) is None
    assert retry_after_of(ValueError()) is None


def test_on_retry_hears_every_retry():
    heard = []
    waits: list[float] = []
    call_with_retry(Flaky(2), policy=policy(waits, on_retry=heard.append))
    assert [(a.attempt, a.tries, a.delay) for a in heard] == [(1, 3, 1.0), (2, 3, 2.0)]
    assert all(isinstance(a.error, ConnectionError) for a in heard)


def test_policy_from_the_config_section():
    config = parse_config("retry: {tries: 5, base: 250ms, max_delay: 1m}\n", environ={})
    built = RetryPolicy.from_settings(config.retry)
    assert (built.tries, built.base, built.max_delay) == (5, 0.25, 60.0)
    with pytest.raises(ConfigError, match="retry.tries"):
        RetryPolicy.from_settings(parse_config("retry: {tries: 0}\n", environ={}).retry)


def test_environment_overrides_the_retry_section():
    config = parse_config("", environ={"AUTOGLM_RETRY__BASE": "0"})
    assert RetryPolicy.from_settings(config.retry).delay(1) == 0.0
