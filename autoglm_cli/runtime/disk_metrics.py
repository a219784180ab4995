"""The weights cache's file system as gauges, read when Prometheus scrapes.

A collector, not a gauge set on a timer: the figures are as fresh as the scrape and
cost one statvfs() each time, nothing in between.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path


def nearest_existing(path: Path) -> Path:
    """`path`, or its closest ancestor that exists (a cache not yet created lives there)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


class WeightsCacheDiskCollector:
    """`autoglm_weights_cache_free_bytes` and `_size_bytes` of the disk under `cache_dir`."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def collect(self) -> Iterator:
        from prometheus_client.core import GaugeMetricFamily

        try:
            usage = shutil.disk_usage(nearest_existing(self.cache_dir))
        except OSError:
            return  # an unreadable mount: no figure rather than a wrong one
        yield GaugeMetricFamily(
            "autoglm_weights_cache_free_bytes",
            "Bytes free on the file system that holds the weights cache (for unprivileged users)",
            value=usage.free,
        )
        yield GaugeMetricFamily(
            "autoglm_weights_cache_size_bytes",
            "Size in bytes of the file system that holds the weights cache",
            value=usage.total,
        )

    def describe(self) -> list:
        return []  # nothing to check at registration; collect() is cheap enough to run then
