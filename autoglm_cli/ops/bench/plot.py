"""The PNG of a bench run: latency over time on top, time to first token and time per
output token in the middle, node count and request rate below.

matplotlib is the optional extra `plot` (`pip install 'autoglm[plot]'`); it is
imported here only, with the non-interactive Agg backend.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from ...atomic import atomic_write
from ...errors import UsageError
from .metrics import NodeSample
from .replay import RequestRecord
from .stats import percentile


class PlotUnavailable(UsageError):
    default_remedy = "Install the plot extra (pip install 'autoglm[plot]') or pass --no-plot."


def matplotlib_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def write_plot(
    path: Path,
    records: Sequence[RequestRecord],
    samples: Sequence[NodeSample],
    *,
    title: str,
    bin_s: float | None = None,
) -> Path:
    """Write the PNG atomically (temporary sibling, then rename).

    `bin_s` is the width of the percentile and rate bins (default: about 40 bins over the run).
    """
    if not matplotlib_available():
        raise PlotUnavailable("matplotlib is not installed, so no plot can be written")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    span = max((r.scheduled_s for r in records), default=0.0)
    bin_s = bin_s or max(1.0, round(span / 40))
    ok = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(10, 8.5), height_ratios=(3, 2, 2))
    top.scatter([r.scheduled_s for r in ok], [r.latency_s for r in ok], s=4, alpha=0.35, label="request")
    if failed:
        failed_x, failed_y = [r.scheduled_s for r in failed], [r.latency_s for r in failed]
        top.scatter(failed_x, failed_y, s=12, marker="x", color="red", label="error")
    centres, p50, p99 = _binned_percentiles(ok, bin_s, lambda r: r.latency_s)
    if centres:
        top.plot(centres, p50, color="black", linewidth=1.2, label=f"p50 per {bin_s:g} s")
        top.plot(centres, p99, color="darkorange", linewidth=1.2, label=f"p99 per {bin_s:g} s")
    top.set_ylabel("latency (s)")
    top.set_title(title)
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    _token_panel(middle, ok, bin_s)

    arrivals = _rate(records, bin_s)
    if samples and any(s.actual is not None for s in samples):
        times = [s.t_s for s in samples]
        bottom.step(times, [s.actual for s in samples], where="post", color="tab:blue", label="nodes")
        if any(s.desired is not None for s in samples):
            bottom.step(
                times,
                [s.desired for s in samples],
                where="post",
                linestyle="--",
                color="tab:green",
                label="desired nodes",
            )
        top_nodes = max(max(s.actual or 0, s.desired or 0) for s in samples)
        bottom.set_ylim(0, top_nodes + 1)
        bottom.set_ylabel("nodes")
        bottom.legend(loc="upper left", fontsize=8)
        rate_axis = bottom.twinx()
    else:
        note = "no node metrics (not an autoglm gateway)"
        bottom.text(0.01, 0.9, note, transform=bottom.transAxes, fontsize=8)
        rate_axis = bottom
    rate_axis.plot([t for t, _ in arrivals], [r for _, r in arrivals], color="grey", alpha=0.6, linewidth=1)
    rate_axis.set_ylabel("requests/s (sent)")
    bottom.set_xlabel("time since start of replay (s)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()

    path = Path(path)
    png = io.BytesIO()
    try:
        fig.savefig(png, format="png", dpi=110)
    finally:
        plt.close(fig)
    atomic_write(path, png.getvalue())
    return path


def _token_panel(axis, ok: Sequence[RequestRecord], bin_s: float) -> None:
    """TTFT p50/p99 per bin (seconds, left axis) and TPOT p50/p99 per bin (ms, right axis)."""
    centres, p50, p99 = _binned_percentiles(ok, bin_s, lambda r: r.ttft_s)
    if not centres:
        axis.text(
            0.01, 0.8, "no first-token times (requests not streamed)", transform=axis.transAxes, fontsize=8
        )
        axis.set_ylabel("time to first token (s)")
        return
    axis.plot(centres, p50, color="tab:purple", linewidth=1.2, label="TTFT p50")
    axis.plot(centres, p99, color="tab:purple", linestyle="--", linewidth=1.0, label="TTFT p99")
    axis.set_ylabel("time to first token (s)")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    lines = axis.get_legend_handles_labels()
    centres, p50, p99 = _binned_percentiles(ok, bin_s, lambda r: r.tpot_s)
    if centres:
        right = axis.twinx()
        right.plot(centres, [v * 1000 for v in p50], color="tab:brown", linewidth=1.2, label="TPOT p50")
        right.plot(
            centres,
            [v * 1000 for v in p99],
            color="tab:brown",
            linestyle="--",
            linewidth=1.0,
            label="TPOT p99",
        )
        right.set_ylabel("time per output token (ms)")
        right.set_ylim(0, max(p99) * 1000 * 1.1 or 1)
        more = right.get_legend_handles_labels()
        lines = (lines[0] + more[0], lines[1] + more[1])
    axis.legend(*lines, loc="upper left", fontsize=8)


def _binned_percentiles(records: Sequence[RequestRecord], bin_s: float, measure):
    bins: dict[int, list[float]] = {}
    for r in records:
        value = measure(r)
        if value is not None:
            bins.setdefault(int(r.scheduled_s // bin_s), []).append(value)
    centres, p50, p99 = [], [], []
    for index in sorted(bins):
        values = sorted(bins[index])
        centres.append((index + 0.5) * bin_s)
        p50.append(percentile(values, 50))
        p99.append(percentile(values, 99))
    return centres, p50, p99


def _rate(records: Sequence[RequestRecord], bin_s: float) -> list[tuple[float, float]]:
    counts: dict[int, int] = {}
    for r in records:
        counts[int(r.scheduled_s // bin_s)] = counts.get(int(r.scheduled_s // bin_s), 0) + 1
    if not counts:
        return []
    return [((i + 0.5) * bin_s, counts.get(i, 0) / bin_s) for i in range(max(counts) + 1)]
