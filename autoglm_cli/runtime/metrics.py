"""Prometheus metrics for one gateway, in its own `CollectorRegistry`.

A registry per app (not the global one) lets tests and benchmarks run several
gateways in one process without their counters mixing. Every name is listed in
docs/serve.md ("Metrics"); tests/runtime/test_metrics.py scrapes a real server for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .scheduler.base import NodeState, Priority

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Seconds between two output tokens: a GPU decode step is milliseconds, a CPU one tens of them.
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5)


@dataclass(frozen=True)
class NodeLoad:
    """One node's load at a scrape: requests sent to it, and how full its running batch is."""

    node: str
    model: str
    in_flight: int  # requests sent to the node and not finished (running or in its own queue)
    occupancy: float  # sequences it runs at once / its slots, 0..1


class _NodeCollector:
    """Per-node gauges read at each scrape, so a node that is gone leaves no stale series."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[NodeLoad]] = list

    def _families(self, loads: Iterable[NodeLoad]):
        from prometheus_client.core import GaugeMetricFamily

        in_flight = GaugeMetricFamily(
            "autoglm_requests_in_flight",
            "Requests sent to a node and not finished yet (running or waiting in the node's own queue)",
            labels=["node", "model"],
        )
        occupancy = GaugeMetricFamily(
            "autoglm_node_batch_occupancy",
            "Sequences a node runs at once divided by the sequences it can run at once (its slots), 0..1",
            labels=["node", "model"],
        )
        for load in loads:
            in_flight.add_metric([load.node, load.model], load.in_flight)
            occupancy.add_metric([load.node, load.model], load.occupancy)
        return [in_flight, occupancy]

    def describe(self):
        return self._families(())

    def collect(self):
        return self._families(self.source())


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
            "Seconds from receiving an HTTP request until its response was sent completely "
            "(for a stream: until its last event), by route template",
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
        # What an operator of an LLM service reads first: latency split into its parts, errors by code.
        self.time_to_first_token = Histogram(
            "autoglm_time_to_first_token_seconds",
            "Seconds from a streamed request's arrival at the gateway to its first output token, "
            "by the model that served it",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.time_per_output_token = Histogram(
            "autoglm_time_per_output_token_seconds",
            "Mean seconds between output tokens after the first, one observation per streamed "
            "request with at least two tokens, by the model that served it",
            ["model"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "autoglm_queue_wait_seconds",
            "Seconds a request waited in the gateway's queue before it was first sent to a node, "
            "by the model that served it",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.request_errors = Counter(
            "autoglm_request_errors",
            "Requests answered with an error, by the error's code (its type when it has no code)",
            ["code"],
            registry=r,
        )
        self._nodes = _NodeCollector()
        r.register(self._nodes)
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

    def watch_nodes(self, source: Callable[[], Iterable[NodeLoad]]) -> None:
        """Read the per-node gauges (`autoglm_requests_in_flight`, `autoglm_node_batch_occupancy`)
        from `source` at each scrape."""
        self._nodes.source = source

    def count_error(self, error) -> None:
        """Count an `ApiError` answered to a client, once however many layers see it."""
        if error.counted:
            return
        error.counted = True
        self.request_errors.labels(error.code or error.type).inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
