"""Every scheduling policy by name: the one factory the runtime, the simulation and
`autoglm bench --simulate --policy` share, so they run the same policy code."""

from __future__ import annotations

import random

from .base import MONOTONIC, Clock, Scheduler
from .baselines import BASELINES, PrefixHash
from .dynamic import DynamicScheduler, DynamicSettings

POLICIES = ("dynamic", "static", *BASELINES)


def make_policy(
    name: str,
    settings: DynamicSettings | None = None,
    clock: Clock = MONOTONIC,
    *,
    workers: int | None = None,
    rng: random.Random | None = None,
    block_tokens: int | None = None,
) -> Scheduler:
    """The policy `name` (one of POLICIES). `settings` are the dynamic policy's; the fixed-pool
    policies take `workers` (default: `settings.min_workers`); `prefix-hash` keys on the same
    prefix length whatever the size of the prefix blocks (`block_tokens`, default
    `settings.prefix_block_tokens`). ValueError for an unknown name."""
    settings = settings or DynamicSettings()
    size = settings.min_workers if workers is None else workers
    if name == "dynamic":
        return DynamicScheduler(settings, clock=clock, rng=rng)
    if name == "static":
        from .static import StaticScheduler

        return StaticScheduler(size, clock=clock)
    policy = BASELINES.get(name)
    if policy is None:
        raise ValueError(f"unknown scheduling policy {name!r} (choose from {', '.join(POLICIES)})")
    if policy is PrefixHash:
        tokens = settings.prefix_block_tokens if block_tokens is None else block_tokens
        return PrefixHash(size, clock=clock, rng=rng or random.Random(0), block_tokens=tokens)
    return policy(size, clock=clock, rng=rng or random.Random(0))
