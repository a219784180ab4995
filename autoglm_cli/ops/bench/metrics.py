"""Node counts over time from an autoglm gateway's `/metrics` (Prometheus text), for the plot.

Any OpenAI-compatible endpoint can be benchmarked; only an autoglm gateway exports
these gauges. The first failed scrape (404, refused, not Prometheus text) ends the
polling quietly: the report then has no node series.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import asyncio

# The scheduler's gauges (runtime/metrics); `autoglm_nodes{state}` is the gateway's own.
ACTUAL = "autoglm_scheduler_actual_nodes"
DESIRED = "autoglm_scheduler_desired_nodes"
PREDICTED = "autoglm_scheduler_predicted_load"
SCALE_EVENTS = "autoglm_scheduler_scale_events"
NODES_BY_STATE = "autoglm_nodes"
LIVE_STATES = ("starting", "ready", "draining")


@dataclass(frozen=True)
class NodeSample:
    t_s: float  # seconds from the start of the replay
    actual: float | None
    desired: float | None = None
    predicted_load: float | None = None
    scale_ups: float | None = None  # cumulative counters
    scale_downs: float | None = None


def metrics_url_for(base_url: str) -> str:
    """`http://host:8000/v1` -> `http://host:8000/metrics` (the gateway serves it at the root)."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/metrics", "", ""))


def parse_sample(text: str, t_s: float) -> NodeSample | None:
    """The node gauges in a Prometheus exposition; None when there are none."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    by_state = 0.0
    seen_state = False
    ups = downs = None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in (ACTUAL, DESIRED, PREDICTED):
                    values[sample.name] = sample.value
                elif sample.name == NODES_BY_STATE and sample.labels.get("state") in LIVE_STATES:
                    by_state += sample.value
                    seen_state = True
                elif sample.name == SCALE_EVENTS + "_total":
                    direction = sample.labels.get("direction")
                    if direction == "up":
                        ups = (ups or 0.0) + sample.value
                    elif direction == "down":
                        downs = (downs or 0.0) + sample.value
    except ValueError:  # not Prometheus text
        return None
    actual = values.get(ACTUAL, by_state if seen_state else None)
    if actual is None and DESIRED not in values:
        return None
    return NodeSample(t_s, actual, values.get(DESIRED), values.get(PREDICTED), ups, downs)


async def poll(
    url: str, started_at: float, stop: asyncio.Event, *, interval_s: float = 0.5, headers: dict | None = None
) -> list[NodeSample]:
    """Scrape `url` every `interval_s` until `stop` is set."""
    import asyncio  # the replay's own; not at import (start-up)

    import httpx

    samples: list[NodeSample] = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0), headers=headers or {}) as client:
        while not stop.is_set():
            try:
                response = await client.get(url)
            except httpx.HTTPError:
                break
            if response.status_code != 200:
                break
            sample = parse_sample(response.text, time.perf_counter() - started_at)
            if sample is None:
                break
            samples.append(sample)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
    return samples
