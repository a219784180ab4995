"""What a node can run at once, from what its host advertises (`ModelHost.status()`)."""

from __future__ import annotations

from ..scheduler.base import Node


def apply_capacity(node: Node, status: dict, *, accepted: int) -> None:
    """Set the node's `slots` (sequences it runs at once: its batch), `capacity` (requests the
    gateway sends it at once: `workers.concurrency`, at least its batch) and `kv_cache_tokens`.

    A status without `max_batch` (an upstream endpoint) changes nothing.
    """
    if status.get("max_batch") is None:
        return
    slots = max(1, int(status["max_batch"]))
    node.slots = slots
    node.capacity = max(accepted, slots)
    tokens = status.get("kv_cache_tokens")
    node.kv_cache_tokens = int(tokens) if tokens is not None else None
