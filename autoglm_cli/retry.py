"""Retry a flaky call with exponential backoff and jitter, honouring `Retry-After`.

The project's convention (DESIGN.md): base 1 s, 3 tries. After failed attempt
`n` the wait is `min(max_delay, base * 2**(n-1))` scaled by a random factor in
[0.5, 1.5), so many clients that failed together do not retry together. When the
failure carries a server's `Retry-After` (seconds or an HTTP date), that wait is
used instead, capped at `max_retry_after`.

`sleep` and `random` are injectable so tests never wait:

    policy = RetryPolicy(sleep=waits.append, random=lambda: 0.5)
    call_with_retry(fetch, policy=policy, retry_if=is_transient)
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .config import Retry

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    tries: int = 3  # attempts in all, the first one included
    base: float = 1.0  # seconds before the second attempt (before jitter)
    max_delay: float = 30.0  # cap on one backoff wait
    max_retry_after: float = 300.0  # cap on a server-requested wait
    sleep: Callable[[float], Any] | None = field(default=None, compare=False, repr=False)
    random: Callable[[], float] | None = field(default=None, compare=False, repr=False)
    # Hears every retry (e.g. the CLI's "retrying in 1.2 s" note) unless the call passes its own.
    on_retry: Callable[[RetryAttempt], Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.tries < 1:
            raise ValueError("tries must be at least 1")

    @classmethod
    def from_settings(cls, settings: Retry, **overrides: Any) -> RetryPolicy:
        """The policy the config's `retry` section describes."""
        if settings.tries < 1:
            from .errors import ConfigError

            raise ConfigError(f"must be at least 1, got {settings.tries}", field="retry.tries")
        return cls(tries=settings.tries, base=settings.base, max_delay=settings.max_delay, **overrides)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        nominal = min(self.max_delay, self.base * 2 ** (attempt - 1))
        return nominal * (0.5 + (_random.random if self.random is None else self.random)())

    def wait(self, seconds: float) -> None:
        (time.sleep if self.sleep is None else self.sleep)(seconds)


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class RetryAttempt:
    """What `on_retry` hears before each wait: which attempt failed, why, how long we wait."""

    attempt: int
    tries: int
    error: Exception
    delay: float


def parse_retry_after(value: str | float | int | None, *, now: datetime | None = None) -> float | None:
    """A `Retry-After` header value (delta-seconds or an HTTP date) as seconds, or None."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return max(float(value), 0.0)
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # rare (HTTP dates); ~10 ms to import

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now or datetime.now(timezone.utc)
    return max((when - current).total_seconds(), 0.0)


def retry_after_of(error: BaseException) -> float | None:
    """The server-requested wait an error carries, if any.

    Looks at `error.retry_after` (seconds), then at `error.response.headers`
    (requests, httpx and huggingface_hub errors all carry the response).
    """
    explicit = getattr(error, "retry_after", None)
    if explicit is not None:
        return parse_retry_after(explicit)
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if isinstance(headers, Mapping) or hasattr(headers, "get"):
        try:
            return parse_retry_after(headers.get("Retry-After"))
        except (AttributeError, TypeError):
            return None
    return None


RetryIf = Callable[[Exception], bool] | type[Exception] | tuple[type[Exception], ...]


def _predicate(retry_if: RetryIf) -> Callable[[Exception], bool]:
    """`retry_if` as a predicate: exception types become an isinstance check."""
    if isinstance(retry_if, (type, tuple)):
        types_ = retry_if
        return lambda exc: isinstance(exc, types_)
    return retry_if


def _announce(
    policy: RetryPolicy, attempt: int, exc: Exception, on_retry: Callable[[RetryAttempt], Any] | None
) -> float:
    """The wait after failed `attempt`, told to the listener before anyone waits."""
    delay = policy.delay(attempt, retry_after_of(exc))
    listener = on_retry or policy.on_retry
    if listener is not None:
        listener(RetryAttempt(attempt, policy.tries, exc, delay))
    return delay


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
    retry_if: RetryIf = Exception,
    on_retry: Callable[[RetryAttempt], Any] | None = None,
) -> T:
    """Call `fn` until it succeeds or `policy.tries` attempts failed.

    Only exceptions accepted by `retry_if` (a predicate or exception types) are
    retried; anything else, and the last failure, propagates unchanged.
    KeyboardInterrupt and SystemExit are never retried.
    """
    should_retry = _predicate(retry_if)
    for attempt in range(1, policy.tries + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt >= policy.tries or not should_retry(exc):
                raise
            delay = _announce(policy, attempt, exc, on_retry)
            policy.wait(delay)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


async def call_with_retry_async(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
    retry_if: RetryIf = Exception,
    on_retry: Callable[[RetryAttempt], Any] | None = None,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
) -> T:
    """`call_with_retry` for coroutines: `fn()` returns an awaitable; the waits are `await sleep(s)`
    (default `asyncio.sleep`), so an event loop keeps serving others meanwhile."""
    import asyncio

    should_retry = _predicate(retry_if)
    for attempt in range(1, policy.tries + 1):
        try:
            return await fn()
        except Exception as exc:
            if attempt >= policy.tries or not should_retry(exc):
                raise
            delay = _announce(policy, attempt, exc, on_retry)
            await (sleep or asyncio.sleep)(delay)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
