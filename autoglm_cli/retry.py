"""Retries with exponential backoff and jitter, honouring `Retry-After` (DESIGN.md, Conventions).

Defaults: 3 tries, base 1 s, doubling, "equal jitter" (each wait is drawn from
[d/2, d] so concurrent clients spread out but never retry immediately). A server's
`Retry-After` replaces the computed wait; one longer than `max_delay` ends the
retries instead of holding the caller that long. `sleep` and `rng` are injectable
so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    tries: int = 3  # attempts in all, the first included
    base: float = 1.0  # seconds before the second attempt (before jitter)
    max_delay: float = 30.0
    jitter: bool = True

    def delay(
        self, failures: int, retry_after: float | None = None, rng: Callable[[], float] = random.random
    ):
        """Seconds to wait after the `failures`-th failure, or None to stop retrying."""
        if failures >= self.tries:
            return None
        if retry_after is not None:
            return max(0.0, retry_after) if retry_after <= self.max_delay else None
        wait = min(self.base * 2 ** (failures - 1), self.max_delay)
        return wait * (0.5 + rng() / 2) if self.jitter else wait


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


class Retryable(Exception):
    """Raise (or subclass) to ask for another attempt; `retry_after` is the server's wish."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after_of(exc: BaseException) -> float | None:
    return getattr(exc, "retry_after", None)


def retry_call(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy = RetryPolicy(),
    retryable: Callable[[BaseException], bool] = lambda e: isinstance(e, Retryable),
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException, float], None] | None = None,
    rng: Callable[[], float] = random.random,
) -> T:
    failures = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not retryable(exc):
                raise
            failures += 1
            wait = policy.delay(failures, _retry_after_of(exc), rng)
            if wait is None:
                raise
            if on_retry is not None:
                on_retry(exc, wait)
            sleep(wait)


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy = RetryPolicy(),
    retryable: Callable[[BaseException], bool] = lambda e: isinstance(e, Retryable),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[BaseException, float], None] | None = None,
    rng: Callable[[], float] = random.random,
) -> T:
    failures = 0
    while True:
        try:
            return await fn()
        except Exception as exc:
            if not retryable(exc):
                raise
            failures += 1
            wait = policy.delay(failures, _retry_after_of(exc), rng)
            if wait is None:
                raise
            if on_retry is not None:
                on_retry(exc, wait)
            await sleep(wait)
