"""Load forecasts for the scheduler's control tick, and the arrival counter that feeds them.

Three forecasters of the next interval's arrival rate, all O(1) per update:

- `LastValue`: the next interval looks like the last one (the naive anchor);
- `Ewma`: exponentially weighted moving average (smooth, lags a ramp);
- `Holt`: Holt's double exponential smoothing, a level plus a (damped) trend, so a
  ramp is extrapolated instead of lagged.

Which one the dynamic scheduler uses was chosen by measurement on the Azure traces
(`benchmarks/bench_forecast.py`, figures in docs/benchmarks.md), not by taste.
Nothing here does I/O or reads a clock of its own: `ArrivalCounter` takes the clock
it is given, so tests drive time by hand.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .base import MONOTONIC, Clock


class Forecaster(Protocol):
    name: str

    def update(self, value: float) -> None:
        """Feed the observed value of the interval that just closed."""
        ...

    def forecast(self, steps: int = 1) -> float:
        """The expected value `steps` intervals ahead (never negative)."""
        ...


class LastValue:
    name = "last-value"

    def __init__(self) -> None:
        self._last = 0.0

    def update(self, value: float) -> None:
        self._last = value

    def forecast(self, steps: int = 1) -> float:
        return max(0.0, self._last)


class Ewma:
    name = "ewma"

    def __init__(self, alpha: float = 0.3) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self._level: float | None = None

    def update(self, value: float) -> None:
        self._level = value if self._level is None else self._level + self.alpha * (value - self._level)

    def forecast(self, steps: int = 1) -> float:
        return max(0.0, self._level or 0.0)


class Holt:
    """Holt's linear method with an optional damped trend (phi < 1 keeps bursts from running away)."""

    name = "holt"

    def __init__(self, alpha: float = 0.5, beta: float = 0.1, phi: float = 0.9) -> None:
        for label, value in (("alpha", alpha), ("beta", beta), ("phi", phi)):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{label} must be in (0, 1], got {value}")
        self.alpha, self.beta, self.phi = alpha, beta, phi
        self._level: float | None = None
        self._trend = 0.0

    def update(self, value: float) -> None:
        if self._level is None:
            self._level = value
            return
        previous = self._level
        self._level = self.alpha * value + (1 - self.alpha) * (previous + self.phi * self._trend)
        self._trend = self.beta * (self._level - previous) + (1 - self.beta) * self.phi * self._trend

    def forecast(self, steps: int = 1) -> float:
        if self._level is None:
            return 0.0
        # Damped trend: phi + phi^2 + ... + phi^steps.
        damping = steps if self.phi == 1.0 else self.phi * (1 - self.phi**steps) / (1 - self.phi)
        return max(0.0, self._level + damping * self._trend)


FORECASTERS = ("last-value", "ewma", "holt")


def make_forecaster(kind: str, **params: float) -> Forecaster:
    """A fresh forecaster by name (`last-value`, `ewma`, `holt`) with optional parameters."""
    if kind == "last-value":
        return LastValue()
    if kind == "ewma":
        return Ewma(**params)
    if kind == "holt":
        return Holt(**params)
    raise ValueError(f"unknown forecaster {kind!r} (choose one of {', '.join(FORECASTERS)})")


# --- measuring forecasts ------------------------------------------------------


@dataclass(frozen=True)
class ForecastError:
    """How far a forecaster's one-step-ahead forecasts were from what happened."""

    name: str
    mae: float  # mean absolute error, in the series' unit (requests/s)
    rmse: float
    bias: float  # mean(forecast - actual): negative means it under-forecasts
    under: float  # mean shortfall max(0, actual - forecast): what a late scale-up costs
    points: int


def evaluate(
    series: Sequence[float], forecaster: Forecaster, *, warmup: int = 0, steps: int = 1
) -> ForecastError:
    """Replay `series` through `forecaster`, scoring each `steps`-ahead forecast after `warmup`."""
    errors: list[float] = []
    pending: deque[float] = deque()  # forecasts made, waiting for their actual value
    for index, actual in enumerate(series):
        if len(pending) == steps:
            predicted = pending.popleft()
            if index >= warmup + steps:
                errors.append(predicted - actual)
        forecaster.update(actual)
        pending.append(forecaster.forecast(steps))
    if not errors:
        return ForecastError(forecaster.name, math.nan, math.nan, math.nan, math.nan, 0)
    n = len(errors)
    return ForecastError(
        name=forecaster.name,
        mae=sum(abs(e) for e in errors) / n,
        rmse=math.sqrt(sum(e * e for e in errors) / n),
        bias=sum(errors) / n,
        under=sum(max(0.0, -e) for e in errors) / n,
        points=n,
    )


def rates_per_interval(times: Iterable[float], interval_s: float, *, end: float | None = None) -> list[float]:
    """Arrival times (seconds, ascending) as a rate (per second) for each interval."""
    counts: list[int] = []
    for t in times:
        index = int(t // interval_s)
        if index >= len(counts):
            counts.extend([0] * (index + 1 - len(counts)))
        counts[index] += 1
    if end is not None:
        wanted = int(math.ceil(end / interval_s))
        counts.extend([0] * max(0, wanted - len(counts)))
    return [c / interval_s for c in counts]


# --- counting arrivals live ---------------------------------------------------


class ArrivalCounter:
    """Counts arrivals into fixed intervals and over a sliding window.

    `close(now)` returns the rates of the intervals that ended since the last call
    (zero-arrival intervals included), which is what a forecaster eats; `rate(window)`
    is the recent rate the panic path looks at.
    """

    def __init__(self, interval_s: float, *, window_s: float = 10.0, clock: Clock = MONOTONIC) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self.window_s = window_s
        self._clock = clock
        self._start = clock()
        self._closed = 0  # index of the first interval not yet returned by close()
        self._counts: dict[int, int] = {}
        self._recent: deque[float] = deque()  # arrival times within window_s

    def add(self, count: int = 1, *, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        index = int((now - self._start) // self.interval_s)
        index = max(index, self._closed)  # a late report lands in the open interval
        self._counts[index] = self._counts.get(index, 0) + count
        self._recent.extend([now] * count)
        self._trim(now)

    def close(self, now: float | None = None) -> list[float]:
        now = self._clock() if now is None else now
        current = int((now - self._start) // self.interval_s)
        rates = [self._counts.pop(i, 0) / self.interval_s for i in range(self._closed, current)]
        self._closed = max(self._closed, current)
        return rates

    def rate(self, window_s: float, *, min_events: int = 0, now: float | None = None) -> float:
        """Arrivals per second over the last `window_s`, widened (up to the counter's
        window) until it holds `min_events` arrivals: three seconds that saw two
        arrivals say little about the rate, ten arrivals say something."""
        now = self._clock() if now is None else now
        self._trim(now)
        window_s = min(window_s, self.window_s)
        if min_events > 0 and len(self._recent) >= min_events:
            window_s = max(window_s, now - self._recent[-min_events])
        elif min_events > 0:
            window_s = self.window_s  # too few arrivals for a shorter window: use all we keep
        # Early on, divide by the time actually observed, not the whole window.
        span = min(window_s, max(now - self._start, 1e-9))
        cutoff = now - window_s
        count = 0
        for t in reversed(self._recent):
            if t < cutoff:
                break
            count += 1
        return count / max(span, 1e-9)

    def _trim(self, now: float) -> None:
        cutoff = now - self.window_s
        while self._recent and self._recent[0] <= cutoff:
            self._recent.popleft()
