"""`autoglm bench`: replay a request trace against an OpenAI-compatible endpoint and report latency."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .context import start
from .options import JsonOption, QuietOption

if TYPE_CHECKING:
    from rich.console import Console

    from ..ops.bench.run import BenchReport

HELP = "Replay a request trace against an OpenAI-compatible endpoint and report latency"
EXAMPLES = (
    "autoglm bench http://127.0.0.1:8000/v1 \\",
    "    -t benchmarks/traces/AzureLLMInferenceTrace_code.csv \\",
    "    --start 180 --duration 30 --speedup 2 --plot bench.png",
)
DEFAULT_PLOT = Path("autoglm-bench.png")


def command(
    ctx: typer.Context,
    url: Annotated[
        str,
        typer.Argument(
            help="Base URL of the endpoint, as for the openai client (e.g. http://127.0.0.1:8000/v1).",
            show_default=False,
        ),
    ],
    trace: Annotated[
        Path,
        typer.Option(
            "--trace",
            "-t",
            help="Trace CSV with TIMESTAMP,ContextTokens,GeneratedTokens (e.g. benchmarks/traces/).",
            show_default=False,
        ),
    ],
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
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    run = start(ctx, "bench", json=json, quiet=quiet)
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
        metrics_url=metrics_url,
        plot=plot_path,
        requests_file=requests_file,
        max_error_rate=max_error_rate,
    )
    with run.out.progress() as progress:
        report = run_bench(options, progress=progress)
    return run.out.result(report, exit_code=report.exit_code, human=lambda console: _render(console, report))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


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
    table.add_row(
        "latency",
        f"p50 {_seconds(lat.p50_s)}  p90 {_seconds(lat.p90_s)}  p99 {_seconds(lat.p99_s)}  "
        f"mean {_seconds(lat.mean_s)}  max {_seconds(lat.max_s)}",
    )
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
