"""`autoglm bench`: replay a trace against an endpoint and report what a user would check.

`run_bench` loads and scales the trace, checks the endpoint once (reachable, key
accepted, model known), replays the trace open-loop while scraping the node count
from `/metrics` when the endpoint is an autoglm gateway, then summarises: throughput,
latency percentiles of the successful requests, errors by kind, fallbacks, node
count over time, and optionally a PNG and the per-request records (JSON lines).
Requests stream, so latency comes with time to first token (TTFT) and time per
output token (TPOT) percentiles.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...atomic import atomic_write
from ...errors import ExitCode, NetworkError, UsageError
from ...progress import NULL_PROGRESS, Progress
from ...redact import redact_url
from .metrics import NodeSample, metrics_url_for, poll
from .replay import ReplaySettings, RequestRecord, client_headers, normalised_base, replay
from .stats import LatencySummary
from .trace import load_trace, scale, span_s


class EndpointRefused(UsageError):
    default_remedy = "Pass a valid key with --api-key (or $AUTOGLM_API_KEY); `autoglm keys create` makes one."


@dataclass(frozen=True)
class BenchOptions:
    url: str
    trace: Path
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    speedup: float = 1.0
    start_s: float = 0.0
    duration_s: float | None = None
    timeout_s: float = 300.0
    max_in_flight: int = 512
    ignore_eos: bool = False
    max_prompt_tokens: int | None = None
    max_output_tokens: int | None = None
    max_tokens: int | None = None  # the same max_tokens on every request (None: the trace's lengths)
    output_length_field: str | None = None  # test engines only: the trace's length in this body field
    metrics_url: str | None = None  # default: /metrics at the endpoint's root
    metrics_interval_s: float = 0.5
    plot: Path | None = None
    requests_file: Path | None = None
    max_error_rate: float = 0.0


@dataclass(frozen=True)
class NodeStats:
    samples: int
    mean: float
    max: float
    worker_seconds: float  # integral of the node count over the replay
    scale_ups: int | None
    scale_downs: int | None


@dataclass(frozen=True)
class BenchReport:
    target: str
    model: str
    trace: str
    speedup: float
    requests: int
    succeeded: int
    failed: int
    error_rate: float
    errors: dict[str, int]
    fallbacks: int
    duration_s: float  # from the start of the replay to the last answer
    throughput_rps: float  # successful requests per second of replay
    output_tokens_per_s: float | None
    latency: LatencySummary  # successful requests, from their scheduled arrival to the last byte
    ttft: LatencySummary  # time to first token of the successful requests, from their scheduled arrival
    tpot: LatencySummary  # time per output token after the first (requests with two tokens or more)
    max_send_lag_s: float  # how late the client sent a request (0 unless --max-in-flight bit)
    nodes: NodeStats | None
    node_samples: tuple[NodeSample, ...]
    plot: str | None
    requests_file: str | None
    max_error_rate: float

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.CHECK_FAILED if self.error_rate > self.max_error_rate else ExitCode.OK


def run_bench(options: BenchOptions, *, progress: Progress = NULL_PROGRESS) -> BenchReport:
    import asyncio  # the replay's own; not at import (start-up)

    _validate(options)
    full = load_trace(options.trace)
    trace = scale(full, speedup=options.speedup, start_s=options.start_s, duration_s=options.duration_s)
    if not trace:
        raise UsageError(
            f"no request of {options.trace} falls in the window (start {options.start_s:g} s, "
            f"duration {options.duration_s} s after a {options.speedup:g}x speed-up)",
            remedy=f"The trace spans {span_s(full):.0f} s; choose --start/--duration inside it.",
        )
    model = _preflight(options)
    settings = ReplaySettings(
        base_url=options.url,
        model=model,
        api_key=options.api_key,
        timeout_s=options.timeout_s,
        max_in_flight=options.max_in_flight,
        ignore_eos=options.ignore_eos,
        max_prompt_tokens=options.max_prompt_tokens,
        max_output_tokens=options.max_output_tokens,
        max_tokens=options.max_tokens,
        output_length_field=options.output_length_field,
    )
    task = progress.task(f"replaying {len(trace)} requests", total=len(trace))
    records, samples = asyncio.run(_run(trace, settings, options, on_done=lambda _: task.advance()))
    task.finish()

    requests_file = _write_records(options.requests_file, records) if options.requests_file else None
    plot = None
    if options.plot is not None:
        from .plot import write_plot

        title = f"{redact_url(options.url)}: {options.trace.name} x{options.speedup:g}"
        plot = str(write_plot(options.plot, records, samples, title=title))
    return _report(options, model, records, samples, plot, requests_file)


def _validate(options: BenchOptions) -> None:
    if options.max_in_flight < 1:
        raise UsageError("--max-in-flight must be at least 1")
    if options.max_tokens is not None and options.max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1")
    if options.timeout_s <= 0:
        raise UsageError("--timeout must be positive")
    if not 0.0 <= options.max_error_rate <= 1.0:
        raise UsageError("--max-error-rate is a fraction between 0 and 1")
    if options.plot is not None:
        from .plot import PlotUnavailable, matplotlib_available

        if not matplotlib_available():
            raise PlotUnavailable("--plot needs matplotlib, which is not installed")


def _preflight(options: BenchOptions) -> str:
    """One GET /models before the run: reachable, key accepted; the model when none was given."""
    import httpx

    url = normalised_base(options.url) + "models"
    shown = redact_url(options.url)
    try:
        response = httpx.get(url, headers=client_headers(options.api_key), timeout=10.0)
    except httpx.HTTPError as exc:
        raise NetworkError(f"cannot reach {shown}: {type(exc).__name__}: {exc}") from None
    if response.status_code in (401, 403):
        raise EndpointRefused(
            f"{shown} refused the request ({response.status_code}): missing or invalid API key"
        )
    if options.model:
        return options.model
    try:
        models = [m["id"] for m in response.json().get("data", [])] if response.status_code == 200 else []
    except (ValueError, AttributeError, KeyError, TypeError):
        models = []
    if not models:
        raise UsageError(
            f"{shown} did not list its models (GET /models: {response.status_code})",
            remedy="Name the model with --model.",
        )
    return models[0]


async def _run(trace, settings: ReplaySettings, options: BenchOptions, *, on_done):
    import asyncio  # the replay's own; not at import (start-up)

    start = time.perf_counter() + 0.05  # the poller's first sample lands before the first request
    stop = asyncio.Event()
    url = options.metrics_url or metrics_url_for(options.url)
    poller = asyncio.create_task(
        poll(url, start, stop, interval_s=options.metrics_interval_s, headers=client_headers(options.api_key))
    )
    try:
        records = await replay(trace, settings, on_done=on_done, start=start)
    finally:
        stop.set()
    return records, await poller


def _write_records(path: Path, records: list[RequestRecord]) -> str:
    lines = (
        json.dumps(
            {
                **asdict(record),
                "latency_s": record.latency_s,
                "ttft_s": record.ttft_s,
                "tpot_s": record.tpot_s,
            }
        )
        + "\n"
        for record in records
    )
    atomic_write(path, "".join(lines))
    return str(path)


def _node_stats(samples: list[NodeSample], end_s: float) -> NodeStats | None:
    points = [(s.t_s, s.actual) for s in samples if s.actual is not None]
    if not points:
        return None
    worker_seconds = 0.0
    for (t0, n), (t1, _) in zip(points, [*points[1:], (max(end_s, points[-1][0]), 0.0)], strict=True):
        worker_seconds += n * max(0.0, t1 - t0)
    span = max(end_s, points[-1][0]) - points[0][0]
    first, last = samples[0], samples[-1]
    ups = None if last.scale_ups is None else int(last.scale_ups - (first.scale_ups or 0))
    downs = None if last.scale_downs is None else int(last.scale_downs - (first.scale_downs or 0))
    return NodeStats(
        samples=len(points),
        mean=worker_seconds / span if span > 0 else points[0][1],
        max=max(n for _, n in points),
        worker_seconds=worker_seconds,
        scale_ups=ups,
        scale_downs=downs,
    )


def _report(options, model, records, samples, plot, requests_file) -> BenchReport:
    ok = [r for r in records if r.ok]
    end = max((r.done_s for r in records), default=0.0)
    tokens = [r.completion_tokens for r in ok if r.completion_tokens is not None]
    return BenchReport(
        target=redact_url(options.url),
        model=model,
        trace=str(options.trace),
        speedup=options.speedup,
        requests=len(records),
        succeeded=len(ok),
        failed=len(records) - len(ok),
        error_rate=(len(records) - len(ok)) / len(records) if records else 0.0,
        errors=dict(Counter(r.error for r in records if r.error)),
        fallbacks=sum(1 for r in records if r.fallback),
        duration_s=end,
        throughput_rps=len(ok) / end if end > 0 else 0.0,
        output_tokens_per_s=sum(tokens) / end if tokens and end > 0 else None,
        latency=LatencySummary.of([r.latency_s for r in ok]),
        ttft=LatencySummary.of([r.ttft_s for r in ok if r.ttft_s is not None]),
        tpot=LatencySummary.of([r.tpot_s for r in ok if r.tpot_s is not None]),
        max_send_lag_s=max((r.sent_s - r.scheduled_s for r in records), default=0.0),
        nodes=_node_stats(samples, end),
        node_samples=tuple(samples),
        plot=plot,
        requests_file=requests_file,
        max_error_rate=options.max_error_rate,
    )
