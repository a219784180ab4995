"""Scheduling policy: the interface (`base`), the policies, the priority queue.

The runtime gets its policy and its queue only through `make_scheduler` and
`make_queue`; every policy by name is in registry.py (the simulation uses it too).
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import ConfigError
from .base import MONOTONIC, Clock, Node, NodeKind, NodeState, NoNodeAvailable, Priority, Scheduler, Task
from .queue import PriorityQueue, QueueFull

__all__ = [
    "NoNodeAvailable",
    "Node",
    "NodeKind",
    "NodeState",
    "Priority",
    "PriorityQueue",
    "QueueFull",
    "Scheduler",
    "Task",
    "make_queue",
    "make_scheduler",
]


def make_scheduler(
    config, *, clock: Clock = MONOTONIC, warn: Callable[[str], None] | None = None
) -> Scheduler:
    """The policy `config.scheduler` names, old names adapted (with a warning through `warn`)."""
    from .legacy import adapt

    choice = adapt(config)
    for message in choice.warnings:
        if warn is not None:
            warn(message)
    if choice.policy == "dynamic":
        from .dynamic import DynamicScheduler

        return DynamicScheduler.from_config(config, clock=clock)
    from ..prefix import BLOCK_TOKENS
    from .registry import make_policy

    try:  # static and the baselines: a fixed pool of `workers`; prompt blocks as the gateway hashes them
        return make_policy(choice.policy, clock=clock, workers=choice.workers, block_tokens=BLOCK_TOKENS)
    except ValueError as exc:
        raise ConfigError(str(exc), field="scheduler") from None


def make_queue(config, *, clock: Clock = MONOTONIC) -> PriorityQueue:
    """The gateway's queue: strict priorities (static), FIFO (dynamic) or aging (priority-based)."""
    from .legacy import adapt

    choice = adapt(config)
    return PriorityQueue(
        max_size=config.gateway.max_queue,
        clock=clock,
        priorities=choice.priorities,
        aging_s=float(config.gateway.priority_aging) if choice.aging else None,
    )
