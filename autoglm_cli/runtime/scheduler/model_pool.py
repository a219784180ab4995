"""The model pool's fallback decision: default model, backup model, and when to switch.

The default serves unless it cannot: no healthy node serves it (load failure, all
nodes dead), or it keeps failing upstream after its retries. Then requests go to
the backup and the gateway marks the response (`x-autoglm-fallback: backup`) and
counts it. Repeated failures open a circuit for `cooldown_s`, so requests stop
paying for a doomed attempt first; after the cooldown one request probes the
default again (half-open) and a success closes the circuit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .base import MONOTONIC, Clock

FALLBACK_HEADER = "x-autoglm-fallback"


@dataclass(frozen=True)
class PoolChoice:
    model: str  # the model to run the request on
    fallback: bool  # True when it is the backup standing in for the default
    reason: str | None = None  # why: "no healthy node", "circuit open", "upstream errors"


class ModelPoolPolicy:
    def __init__(
        self,
        default: str,
        backup: str | None = None,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        clock: Clock = MONOTONIC,
    ) -> None:
        self.default = default
        self.backup = backup if backup != default else None
        self.failure_threshold = max(1, failure_threshold)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._consecutive_failures = 0
        self._open_until: float | None = None
        self._probe_since: float | None = None  # half-open: when the one probe request left
        self.fallbacks = 0  # requests sent to the backup (the metric)

    @property
    def circuit_open(self) -> bool:
        return self._open_until is not None

    def _may_probe(self, commit: bool) -> bool:
        """After the cooldown, let one request try the default (again if its answer never came)."""
        now = self._clock()
        if self._open_until is None or now < self._open_until:
            return False
        if self._probe_since is not None and now - self._probe_since < self.cooldown_s:
            return False
        if commit:
            self._probe_since = now
        return True

    def choose(
        self, requested: str | None, healthy: Callable[[str], bool], *, commit: bool = True
    ) -> PoolChoice:
        """Where a request for `requested` (None: the default) should run.

        `healthy(model)` tells whether some node serves `model` (or soon will). Requests
        that name another model than the default are never redirected. `commit=False`
        only looks (the runtime asks while a task waits): nothing is counted and the
        half-open probe is not taken.
        """
        model = requested or self.default
        if model != self.default or self.backup is None:
            return PoolChoice(model, False)
        if not healthy(self.default):
            reason = "no healthy node"
        elif self.circuit_open and not self._may_probe(commit):
            reason = "circuit open"
        else:
            return PoolChoice(self.default, False)
        if not healthy(self.backup):
            return PoolChoice(self.default, False, f"{reason}; backup not healthy either")
        if commit:
            self.fallbacks += 1
        return PoolChoice(self.backup, True, reason)

    def after_failure(self, model: str) -> PoolChoice | None:
        """A request for `model` failed after its retries: the backup to retry on, if any."""
        if model != self.default:
            return None
        self._consecutive_failures += 1
        if self._consecutive_failures >= self.failure_threshold:
            self._open_until = self._clock() + self.cooldown_s
            self._probe_since = None
        if self.backup is None:
            return None
        self.fallbacks += 1
        return PoolChoice(self.backup, True, "upstream errors")

    def record_success(self, model: str) -> None:
        if model == self.default:
            self._consecutive_failures = 0
            self._open_until = None
            self._probe_since = None
