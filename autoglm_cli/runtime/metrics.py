"""Prometheus metrics for one gateway, in its own `CollectorRegistry`.

A registry per app (not the global one) lets tests and benchmarks run several
gateways in one process without their counters mixing.
"""

from __future__ import annotations

from .scheduler.base import NodeState, Priority

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self._cache_collector = None  # see watch_weights_cache
        r = self.registry
        self.http_requests = Counter(
            "http_requests",
            "HTTP requests answered, by route template and status code",
            ["route", "code"],
            registry=r,
        )
        self.http_latency = Histogram(
            "http_request_duration_seconds",
            "Time to the response's first byte, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "autoglm_queue_depth", "Requests waiting for a node", ["priority"], registry=r
        )
        self.nodes = Gauge("autoglm_nodes", "Model nodes by state", ["state"], registry=r)
        self.tokens = Counter(
            "autoglm_tokens_generated", "Completion tokens generated", ["model"], registry=r
        )
        self.prompt_tokens = Counter(
            "autoglm_prompt_tokens", "Prompt tokens processed", ["model"], registry=r
        )
        self.fallbacks = Counter(
            "autoglm_fallbacks", "Requests served by the backup model", ["from_model", "to_model"], registry=r
        )
        self.retries = Counter("autoglm_retries", "Retries, by reason", ["reason"], registry=r)
        # The scheduler's decisions (ops/bench/metrics.py reads these names).
        self.predicted_load = Gauge(
            "autoglm_scheduler_predicted_load", "The scheduler's predicted load (requests/s)", registry=r
        )
        self.desired_nodes = Gauge(
            "autoglm_scheduler_desired_nodes", "Worker nodes the scheduler wants", registry=r
        )
        self.actual_nodes = Gauge(
            "autoglm_scheduler_actual_nodes", "Nodes starting or ready (serving soon or now)", registry=r
        )
        self.task_estimate_error = Gauge(
            "autoglm_scheduler_task_estimate_error",
            "How far per-request service-time estimates are off: mean |actual/estimate - 1|, 0..1",
            registry=r,
        )
        self.scale_events = Counter(
            "autoglm_scheduler_scale_events",
            "Changes of the desired node count, by direction and reason",
            ["direction", "reason"],
            registry=r,
        )
        for priority in Priority:
            self.queue_depth.labels(priority.name.lower()).set(0)
        for state in NodeState:
            self.nodes.labels(state.value).set(0)

    def watch_weights_cache(self, cache_dir) -> None:
        """Expose the free and total bytes of the disk holding `cache_dir` (once per registry)."""
        from .disk_metrics import WeightsCacheDiskCollector

        if self._cache_collector is None:
            self._cache_collector = WeightsCacheDiskCollector(cache_dir)
            self.registry.register(self._cache_collector)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
