"""Engine load signals: poll each engine node's Prometheus endpoint into its `Node`.

Names read (summed over label sets, e.g. one per served model name):

| signal | vLLM | SGLang |
| --- | --- | --- |
| running requests | `vllm:num_requests_running` | `sglang:num_running_reqs` |
| waiting requests | `vllm:num_requests_waiting` | `sglang:num_queue_reqs` |
| KV-cache use 0..1 | `vllm:kv_cache_usage_perc` (older: `vllm:gpu_cache_usage_perc`) | `sglang:token_usage` |
| KV-cache size, tokens | `vllm:cache_config_info` labels `num_gpu_blocks` x `block_size` | - |

The KV cache's size is also its prefix cache's (an engine keeps cached prefixes in free KV
blocks): it becomes `Node.kv_cache_tokens`, which the dynamic policy sizes its record of
each node's prefix cache by and charges KV overflow against (without it: 1M tokens assumed).

`EngineSignalPoller` runs in the gateway's event loop: every `engines.poll_interval` it
scrapes every upstream node that has a metrics URL, all at once, with a short timeout.
An endpoint that answers 404 (a hosted API) is not polled again; one that fails keeps
its last report, which goes stale (`scheduler/engine_load.SIGNAL_MAX_AGE`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass

from ..scheduler.base import Node, NodeKind
from ..scheduler.engine_load import RUNNING_AT_POLL

log = logging.getLogger("autoglm.engines")

RUNNING = ("vllm:num_requests_running", "sglang:num_running_reqs")
WAITING = ("vllm:num_requests_waiting", "sglang:num_queue_reqs")
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage")

CACHE_INFO = "vllm:cache_config_info"

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')


@dataclass(frozen=True)
class EngineSignals:
    running: int | None
    waiting: int | None
    kv_cache_usage: float | None
    kv_cache_tokens: int | None = None  # the KV cache's size (vLLM's cache_config_info)


def parse_metrics(text: str) -> EngineSignals:
    """The signals in a Prometheus text exposition (None for what it does not report)."""
    sums: dict[str, float] = {}
    kv_tokens: int | None = None
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name = match.group(1)
        if name == CACHE_INFO and match.group(2):
            labels = dict(_LABEL.findall(match.group(2)))
            with contextlib.suppress(KeyError, ValueError):
                kv_tokens = int(labels["num_gpu_blocks"]) * int(labels["block_size"])
            continue
        if name in RUNNING or name in WAITING or name in KV_USAGE:
            try:
                value = float(match.group(3))
            except ValueError:
                continue
            sums[name] = sums.get(name, 0.0) + value

    def first(names: tuple[str, ...]) -> float | None:
        return next((sums[n] for n in names if n in sums), None)

    running, waiting, kv = first(RUNNING), first(WAITING), first(KV_USAGE)
    return EngineSignals(
        running=None if running is None else round(running),
        waiting=None if waiting is None else round(waiting),
        kv_cache_usage=None if kv is None else min(1.0, max(0.0, kv)),
        kv_cache_tokens=kv_tokens if kv_tokens and kv_tokens > 0 else None,
    )


def apply(node: Node, signals: EngineSignals, now: float) -> None:
    """Write a report into the node; remember the gateway's own in-flight count at that moment."""
    node.engine_running = signals.running
    node.engine_waiting = signals.waiting
    node.kv_cache_usage = signals.kv_cache_usage
    if signals.kv_cache_tokens is not None:
        node.kv_cache_tokens = signals.kv_cache_tokens
    node.signals_at = now
    node.extra[RUNNING_AT_POLL] = node.running


def metrics_url_of(base_url: str, options: dict) -> str | None:
    """The engine's metrics URL: the `metrics_url` option ("": none), else the base URL without
    its `/v1`, plus `/metrics` (where vLLM and SGLang serve it)."""
    given = options.get("metrics_url")
    if given is not None:
        return str(given) or None
    root = base_url.rstrip("/")
    if root.endswith("/v1"):
        root = root[:-3]
    return f"{root}/metrics"


class EngineSignalPoller:
    """Polls the engine nodes of a `Runtime` (its `entries`) until stopped."""

    def __init__(self, runtime, *, interval: float = 0.5, timeout: float | None = None) -> None:
        self.runtime = runtime
        self.interval = interval
        self.timeout = timeout if timeout is not None else max(0.2, min(2.0, interval * 2))
        self._task: asyncio.Task | None = None
        self._client = None
        self._gone: set[str] = set()  # metrics URLs that answered 404

    def start(self) -> EngineSignalPoller:
        import httpx

        self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)
        self._task = asyncio.create_task(self._loop(), name="autoglm-engine-signals")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def targets(self) -> list[tuple[Node, str]]:
        found = []
        for entry in list(self.runtime.entries.values()):
            node, handle = entry.node, entry.handle
            if node.kind is not NodeKind.UPSTREAM or handle is None:
                continue
            url = getattr(handle, "metrics_url", None)
            if url and url not in self._gone:
                found.append((node, url))
        return found

    async def poll_once(self) -> None:
        targets = self.targets()
        if targets:
            await asyncio.gather(*(self._poll(node, url) for node, url in targets))

    async def _poll(self, node: Node, url: str) -> None:
        import httpx

        try:
            response = await self._client.get(url)
        except httpx.HTTPError as exc:
            log.debug("engine metrics %s: %s", node.address, exc)
            return
        if response.status_code == 404:
            log.info("node %s has no metrics endpoint (%s answered 404): not polled", node.id, node.address)
            self._gone.add(url)
            return
        if response.status_code != 200:
            return
        signals = parse_metrics(response.text)
        if signals.running is not None or signals.waiting is not None:  # else: not an engine we know
            apply(node, signals, self.runtime.clock())

    async def _loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad scrape must not end the polling
                log.exception("polling engine metrics failed")
            await asyncio.sleep(self.interval)
