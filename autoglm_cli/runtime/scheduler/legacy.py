"""Old config shapes reach the current policies through this adapter, with a warning.

The original design's example says `scheduler: "priority-based"`: there, priorities
were the scheduler. Here every policy serves high/normal/low through the gateway's
priority queue, so the old name maps to the static policy (fixed workers, round
robin) with a warning that says what to write instead.
"""

from __future__ import annotations

from dataclasses import dataclass

LEGACY_NAMES = {
    "priority-based": (
        "static",
        'scheduler: "priority-based" is the old name; priorities (high/normal/low) are always on. '
        'Using the static policy (fixed workers, round robin); write scheduler: "static" '
        '(or "dynamic") to silence this warning.',
    ),
}


@dataclass(frozen=True)
class SchedulerChoice:
    policy: str  # "static" | "dynamic"
    workers: int  # the fixed pool size for static, the starting size for dynamic
    warnings: tuple[str, ...] = ()


def adapt(config) -> SchedulerChoice:
    """Map `config.scheduler` and `config.workers` onto a policy name and a pool size."""
    warnings: list[str] = []
    name = config.scheduler
    if name in LEGACY_NAMES:
        name, message = LEGACY_NAMES[name]
        warnings.append(message)
    workers = config.workers
    size = workers.count if workers.count is not None else workers.min
    return SchedulerChoice(policy=name, workers=size, warnings=tuple(warnings))
