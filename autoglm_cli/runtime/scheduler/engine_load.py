"""An engine node's load as a policy should see it: the engine's own report, plus what the
gateway sent it since (pure: no I/O; `Node` fields filled by `runtime/engines/signals.py`).

vLLM and SGLang batch by themselves and report their running and waiting requests; the
gateway polls that every `engines.poll_interval`. Between polls the gateway's own count
moves the report: requests sent since the poll are added, those finished since are taken
off, and a node never looks less loaded than what this gateway has in flight there (the
engine may also serve other clients, so its report can be higher). Stale signals (older
than `max_age`) count for nothing.
"""

from __future__ import annotations

from .base import Node

SIGNAL_MAX_AGE = 5.0  # seconds after which a node's engine report is ignored
RUNNING_AT_POLL = "running_at_poll"  # Node.extra: the gateway's in-flight count when it polled


def has_signals(node: Node, now: float | None = None, max_age: float = SIGNAL_MAX_AGE) -> bool:
    """Whether `node` has a fresh engine report (`now`: the policy's clock; None: any age)."""
    if node.signals_at is None or node.engine_running is None:
        return False
    return now is None or now - node.signals_at <= max_age


def effective_load(node: Node, now: float | None = None, max_age: float = SIGNAL_MAX_AGE) -> float:
    """Requests at the node: the engine's running + waiting, moved by the change in the
    gateway's own in-flight count there since the report (sent since: more; finished since:
    fewer; a report counts requests that may have ended since); at least the gateway's own
    count; only that without a fresh report."""
    own = node.queued + node.running
    if not has_signals(node, now, max_age):
        return float(own)
    moved_since = node.running - node.extra.get(RUNNING_AT_POLL, node.running)
    reported = (node.engine_running or 0) + (node.engine_waiting or 0)
    return float(max(own, reported + moved_since))


def kv_pressure(node: Node, now: float | None = None, max_age: float = SIGNAL_MAX_AGE) -> float:
    """The engine's KV-cache use (0..1), 0 without a fresh report."""
    if not has_signals(node, now, max_age) or node.kv_cache_usage is None:
        return 0.0
    return node.kv_cache_usage
