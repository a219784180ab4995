"""`autoglm bench`: replay a request trace against an OpenAI-compatible endpoint and report latency
(or, with --simulate, through the fleet simulation: a capacity planner)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .context import start
from .options import JsonOption, QuietOption

if TYPE_CHECKING:
    from rich.console import Console

    from ..ops.bench.run import BenchReport
    from ..ops.bench.simulate import SimulateReport

HELP = (
    "Replay a request trace against an OpenAI-compatible endpoint and report latency"
    " (--simulate: through a simulated fleet, to plan capacity)"
)
EXAMPLES = (
    "autoglm bench http://127.0.0.1:8000/v1 \\",
    "    -t benchmarks/traces/AzureLLMInferenceTrace_code.csv \\",
    "    --start 180 --duration 30 --speedup 2 --plot bench.png",
    "autoglm bench --simulate --policy dynamic --nodes 8 \\",
    "    -t benchmarks/traces/mooncake_conversation_trace.jsonl",
)
DEFAULT_PLOT = Path("autoglm-bench.png")


def command(
    ctx: typer.Context,
    trace: Annotated[
        Path,
        typer.Option(
            "--trace",
            "-t",
            help="Trace: Azure CSV (TIMESTAMP,ContextTokens,GeneratedTokens) or Mooncake JSONL"
            " (detected; e.g. benchmarks/traces/).",
            show_default=False,
        ),
    ],
    url: Annotated[
        Optional[str],
        typer.Argument(
            help="Base URL of the endpoint, as for the openai client (e.g. http://127.0.0.1:8000/v1);"
            " not with --simulate.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Optional[str],
        typer.Option("--model", "-m", help="Model to ask for (default: the first of GET /models)."),
    ] = None,
    api_key: Annotated[
        Optional[str],
        typer.Option(
            "--api-key",
            envvar=["AUTOGLM_API_KEY", "OPENAI_API_KEY"],
            help="Bearer key for the endpoint.",
            show_default=False,
        ),
    ] = None,
    speedup: Annotated[
        float, typer.Option("--speedup", "-s", help="Replay this many times faster than traced.")
    ] = 1.0,
    start_s: Annotated[
        float, typer.Option("--start", help="Skip the trace's first seconds (trace time).")
    ] = 0.0,
    duration: Annotated[
        Optional[float],
        typer.Option("--duration", "-d", help="Stop sending after this many seconds of replay."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds before a request counts as failed.")
    ] = 300.0,
    max_in_flight: Annotated[
        int, typer.Option("--max-in-flight", help="Open connections at most (late sends are reported).")
    ] = 512,
    ignore_eos: Annotated[
        bool, typer.Option("--ignore-eos", help="Ask for exactly max_tokens (vLLM / SGLang extension).")
    ] = False,
    max_prompt_tokens: Annotated[
        Optional[int], typer.Option("--max-prompt-tokens", help="Cap prompt lengths (small test models).")
    ] = None,
    max_output_tokens: Annotated[
        Optional[int], typer.Option("--max-output-tokens", help="Cap max_tokens.")
    ] = None,
    max_tokens: Annotated[
        Optional[int],
        typer.Option(
            "--max-tokens",
            help="Send this max_tokens with every request, as clients with a constant do (default: each"
            " request's traced output length, which tells the server the length in advance).",
        ),
    ] = None,
    output_length_field: Annotated[
        Optional[str],
        typer.Option(
            "--output-length-field",
            help="Test engines only (autoglm_cli.testing.fake_engine --output-field): put the traced"
            " output length in this body field.",
        ),
    ] = None,
    metrics_url: Annotated[
        Optional[str],
        typer.Option("--metrics-url", help="Where the node count is (default: /metrics at the root)."),
    ] = None,
    plot: Annotated[
        Optional[Path],
        typer.Option("--plot", help=f"PNG of latency and node count over time [default: {DEFAULT_PLOT}]."),
    ] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Write no PNG.")] = False,
    requests_file: Annotated[
        Optional[Path], typer.Option("--requests", help="Write every request's record here (JSON lines).")
    ] = None,
    max_error_rate: Annotated[
        float, typer.Option("--max-error-rate", help="Exit 1 when more than this share of requests failed.")
    ] = 0.0,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate", help="Replay through the simulation of a batching fleet instead of an endpoint."
        ),
    ] = False,
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="With --simulate: the scheduling policy (dynamic, static, round-robin, random,"
            " least-requests, least-tokens, p2c, prefix-hash).",
        ),
    ] = "dynamic",
    nodes: Annotated[
        int, typer.Option("--nodes", help="With --simulate: a fixed fleet of this many nodes.")
    ] = 4,
    min_nodes: Annotated[
        Optional[int], typer.Option("--min-nodes", help="With --simulate: autoscale from this many nodes...")
    ] = None,
    max_nodes: Annotated[Optional[int], typer.Option("--max-nodes", help="...up to this many.")] = None,
    slo_ttft: Annotated[
        float, typer.Option("--slo-ttft", help="With --simulate: time-to-first-token SLO, seconds (goodput).")
    ] = 5.0,
    slo_tpot: Annotated[
        float,
        typer.Option("--slo-tpot", help="With --simulate: time-per-output-token SLO, seconds (goodput)."),
    ] = 0.1,
    load_time: Annotated[
        float,
        typer.Option("--load-time", help="With --simulate: seconds a new node takes to load the model."),
    ] = 60.0,
    prefix_cache_tokens: Annotated[
        Optional[int],
        typer.Option("--prefix-cache-tokens", help="With --simulate: each node's prefix cache."),
    ] = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "bench", json=json, quiet=quiet)
    if simulate:
        return _simulate(
            run,
            trace=trace,
            policy=policy,
            nodes=nodes,
            min_nodes=min_nodes,
            max_nodes=max_nodes,
            speedup=speedup,
            start_s=start_s,
            duration=duration,
            slo_ttft=slo_ttft,
            slo_tpot=slo_tpot,
            load_time=load_time,
            prefix_cache_tokens=prefix_cache_tokens,
            max_output_tokens=max_output_tokens,
        )
    if url is None:
        from ..errors import UsageError

        raise UsageError("give the endpoint's URL, or --simulate to replay through the simulation")
    from ..ops.bench.plot import matplotlib_available
    from ..ops.bench.run import BenchOptions, run_bench

    plot_path = None if no_plot else plot
    if not no_plot and plot is None:
        if matplotlib_available():
            plot_path = DEFAULT_PLOT
        else:
            run.out.warn(
                "matplotlib is not installed: no plot (pip install 'autoglm[plot]'; --no-plot hides this)"
            )
    options = BenchOptions(
        url=url,
        trace=trace,
        model=model,
        api_key=api_key,
        speedup=speedup,
        start_s=start_s,
        duration_s=duration,
        timeout_s=timeout,
        max_in_flight=max_in_flight,
        ignore_eos=ignore_eos,
        max_prompt_tokens=max_prompt_tokens,
        max_output_tokens=max_output_tokens,
        max_tokens=max_tokens,
        output_length_field=output_length_field,
        metrics_url=metrics_url,
        plot=plot_path,
        requests_file=requests_file,
        max_error_rate=max_error_rate,
    )
    with run.out.progress() as progress:
        report = run_bench(options, progress=progress)
    return run.out.result(report, exit_code=report.exit_code, human=lambda console: _render(console, report))


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0.01:
        return f"{value * 1000:.1f} ms"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _percentiles(s) -> str:
    return (
        f"p50 {_seconds(s.p50_s)}  p90 {_seconds(s.p90_s)}  p99 {_seconds(s.p99_s)}  "
        f"mean {_seconds(s.mean_s)}  max {_seconds(s.max_s)}"
    )


def _render(console: Console, report: BenchReport) -> None:
    from rich.table import Table

    table = Table(
        title=f"autoglm bench: {report.target} ({report.model})", show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    lat = report.latency
    table.add_row("trace", f"{report.trace} x{report.speedup:g}")
    table.add_row("requests", f"{report.requests} sent, {report.succeeded} ok, {report.failed} failed")
    if report.errors:
        table.add_row("errors", ", ".join(f"{kind}: {n}" for kind, n in sorted(report.errors.items())))
    if report.fallbacks:
        table.add_row("fallbacks", f"{report.fallbacks} served by the backup model")
    table.add_row("duration", f"{report.duration_s:.1f} s")
    throughput = f"{report.throughput_rps:.2f} req/s"
    if report.output_tokens_per_s is not None:
        throughput += f", {report.output_tokens_per_s:.0f} output tokens/s"
    table.add_row("throughput", throughput)
    table.add_row("latency", _percentiles(lat))
    if report.ttft.count:  # streamed answers: the first token, and the pace after it
        table.add_row("time to first token", _percentiles(report.ttft))
    if report.tpot.count:
        table.add_row("time per output token", _percentiles(report.tpot))
    if report.max_send_lag_s > 0.05:
        table.add_row("client lag", f"up to {report.max_send_lag_s:.2f} s late (raise --max-in-flight)")
    if report.nodes is not None:
        n = report.nodes
        scale = "" if n.scale_ups is None else f", {n.scale_ups} scale-ups, {n.scale_downs} scale-downs"
        table.add_row(
            "nodes", f"mean {n.mean:.1f}, max {n.max:.0f}, {n.worker_seconds:.0f} worker-seconds{scale}"
        )
    if report.plot:
        table.add_row("plot", report.plot)
    if report.requests_file:
        table.add_row("records", report.requests_file)
    console.print(table)
    if report.exit_code:
        console.print(
            f"error rate {report.error_rate:.1%} is above --max-error-rate {report.max_error_rate:.1%}"
        )


def _simulate(run, *, trace: Path, max_output_tokens: int | None, duration: float | None, **options) -> int:
    from ..ops.bench.simulate import SimulateOptions, simulate

    report = simulate(
        SimulateOptions(
            trace=trace,
            policy=options["policy"],
            nodes=options["nodes"],
            min_nodes=options["min_nodes"],
            max_nodes=options["max_nodes"],
            speedup=options["speedup"],
            start_s=options["start_s"],
            duration_s=duration,
            slo_ttft_s=options["slo_ttft"],
            slo_tpot_s=options["slo_tpot"],
            # What clients send: a constant bound, as most do (the output length is unknown).
            # --max-output-tokens 0: clients send none.
            max_tokens=4096 if max_output_tokens is None else (max_output_tokens or None),
            load_s=options["load_time"],
            prefix_cache_tokens=options["prefix_cache_tokens"],
        )
    )
    return run.out.result(report, exit_code=0, human=lambda console: _render_simulation(console, report))


def _render_simulation(console: Console, report: SimulateReport) -> None:
    from rich.table import Table

    fleet = (
        f"{report.nodes} nodes"
        if report.nodes is not None
        else f"{report.min_nodes}..{report.max_nodes} nodes (autoscaling, up to {report.max_nodes_used} used)"
    )
    table = Table(
        title=f"autoglm bench --simulate: {report.policy} on {fleet}", show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "trace", f"{report.trace} ({report.trace_format}) x{report.speedup:g}, {report.requests} requests"
    )
    for label, lat in (("TTFT", report.ttft), ("TPOT", report.tpot), ("end to end", report.e2e)):
        table.add_row(
            label,
            f"p50 {_seconds(lat.p50_s)}  p90 {_seconds(lat.p90_s)}  p99 {_seconds(lat.p99_s)}"
            f"  mean {_seconds(lat.mean_s)}",
        )
    table.add_row(
        "goodput",
        f"{report.goodput:.1%} of requests met TTFT <= {_seconds(report.slo_ttft_s)}"
        f" and TPOT <= {_seconds(report.slo_tpot_s)}",
    )
    table.add_row("node-seconds", f"{report.node_seconds:.0f} over {report.simulated_s:.0f} s simulated")
    table.add_row("prefix cache", f"{report.prefix_hit_rate:.1%} of prompt tokens hit")
    table.add_row("simulated in", f"{report.wall_s:.2f} s")
    console.print(table)
