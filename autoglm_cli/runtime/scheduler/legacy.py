"""Old config shapes reach the current policies through this adapter, with a warning.

The original design's example says `scheduler: "priority-based"`: the scheduler that
honours request priorities. It maps to the dynamic policy with priorities on (the
gateway queue orders high / normal / low with aging, so low never starves); plain
`scheduler: dynamic` queues FIFO. It is accepted without a warning: it still says
what it means.
"""

from __future__ import annotations

from dataclasses import dataclass

LEGACY_NAMES = {"priority-based": "dynamic"}


@dataclass(frozen=True)
class SchedulerChoice:
    policy: str  # "static" | "dynamic" | a baseline's name (registry.POLICIES)
    workers: int  # the fixed pool size for static, the starting size for dynamic
    warnings: tuple[str, ...] = ()
    priorities: bool = True  # the gateway queue honours priorities
    aging: bool = False  # ...with aging (low never starves)


def adapt(config) -> SchedulerChoice:
    """Map `config.scheduler` and `config.workers` onto a policy name and a pool size."""
    warnings: list[str] = []
    name = LEGACY_NAMES.get(config.scheduler, config.scheduler)
    workers = config.workers
    size = workers.count if workers.count is not None else workers.min
    if name == "dynamic" and workers.count is not None:
        warnings.append(
            f"workers.count ({workers.count}) fixes the pool; the dynamic scheduler will not resize it "
            "(set workers.min / workers.max instead)"
        )
    # static: strict priorities (the legacy behaviour); dynamic and the baselines: FIFO;
    # priority-based: with aging.
    priority_based = config.scheduler == "priority-based"
    return SchedulerChoice(
        policy=name,
        workers=size,
        warnings=tuple(warnings),
        priorities=name == "static" or priority_based,
        aging=priority_based,
    )
