"""Knative's pod autoscaler (KPA) with its defaults, as the reactive anchor the dynamic
autoscaler is judged against in the simulation (not used by the runtime).

What Knative does (serving/pkg/autoscaler/scaling/autoscaler.go), per tick:
desired = ceil(mean concurrency over the 60 s stable window / target per node); when the
6 s panic window's mean asks for at least 2x the ready nodes, it panics: scales to the
panic window's figure at once and does not scale down until 60 s without panic.
"""

from __future__ import annotations

import math
from collections import deque


class KnativeScaler:
    def __init__(
        self,
        target_concurrency: float,
        *,
        min_nodes: int = 1,
        max_nodes: int = 8,
        stable_window_s: float = 60.0,
        panic_window_s: float = 6.0,
        panic_threshold: float = 2.0,
    ) -> None:
        if target_concurrency <= 0:
            raise ValueError("target_concurrency must be positive")
        self.target = target_concurrency
        self.min_nodes, self.max_nodes = min_nodes, max_nodes
        self.stable_window_s = stable_window_s
        self.panic_window_s = panic_window_s
        self.panic_threshold = panic_threshold
        self._samples: deque[tuple[float, float]] = deque()  # (time, concurrency)
        self._panic_since: float | None = None
        self.desired = min_nodes

    def _mean(self, now: float, window: float) -> float:
        values = [c for t, c in self._samples if t > now - window]
        return sum(values) / len(values) if values else 0.0

    def observe(self, now: float, concurrency: float, ready: int) -> int:
        """One tick: the requests in the system now and the ready nodes; returns the desired count."""
        self._samples.append((now, concurrency))
        while self._samples and self._samples[0][0] <= now - self.stable_window_s:
            self._samples.popleft()
        stable = math.ceil(self._mean(now, self.stable_window_s) / self.target - 1e-9)
        panic = math.ceil(self._mean(now, self.panic_window_s) / self.target - 1e-9)
        if panic >= self.panic_threshold * max(1, ready):
            self._panic_since = now
        elif self._panic_since is not None and now - self._panic_since >= self.stable_window_s:
            self._panic_since = None
        # No scale-down while panicking.
        desired = max(panic, self.desired) if self._panic_since is not None else stable
        self.desired = max(self.min_nodes, min(self.max_nodes, desired))
        return self.desired
