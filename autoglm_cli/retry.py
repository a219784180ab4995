"""Retries with exponential backoff and jitter, honouring `Retry-After`.

The project's convention (DESIGN.md): base 1 s, 3 tries by default. The sleep
function and the random source are injectable, so tests run without waiting and
with a known jitter.

    policy = RetryPolicy(tries=3, base=1.0)
    result = retry_call(fetch, policy=policy, retryable=lambda exc: isinstance(exc, TransientError))

An exception may carry a server's `Retry-After` as a `retry_after` attribute
(seconds); the wait is then at least that long (capped by `max_retry_after`).
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    tries: int = 3  # attempts in all, the first one included
    base: float = 1.0  # the first wait, in seconds; doubled after each failure
    cap: float = 30.0  # no computed wait is longer than this
    jitter: float = 0.5  # the fraction of each wait that is random ("equal jitter")
    max_retry_after: float = 120.0  # a server asking for longer is believed only up to this

    def delay(
        self, failures: int, *, retry_after: float | None = None, rand: Callable[[], float] = _random.random
    ) -> float:
        """The wait after `failures` consecutive failures (1 = after the first)."""
        backoff = min(self.cap, self.base * (2 ** max(0, failures - 1)))
        wait = backoff * (1 - self.jitter) + backoff * self.jitter * rand()
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: a number of seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_call(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy = RetryPolicy(),
    retryable: Callable[[BaseException], bool],
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = _random.random,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
) -> T:
    """Call `fn` until it succeeds, a non-retryable error occurs or `policy.tries` are spent.

    The last error is re-raised as is. `on_retry(error, failures, wait)` is told
    before each wait (for a warning or a log line).
    """
    failures = 0
    while True:
        try:
            return fn()
        except Exception as exc:  # re-raised below unless the caller says it is transient
            failures += 1
            if failures >= policy.tries or not retryable(exc):
                raise
            wait = policy.delay(failures, retry_after=getattr(exc, "retry_after", None), rand=rand)
            if on_retry is not None:
                on_retry(exc, failures, wait)
            sleep(wait)
