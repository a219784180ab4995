"""Request traces: the Azure LLM inference CSV and Mooncake JSONL formats, time scaling and
synthetic traces.

A trace is a list of requests, each with its arrival offset (seconds from the start
of the trace), its prompt length and its output length in tokens, and where known the
prompt's prefix blocks. Two formats are read, told apart by their first character:

- the Azure public traces' CSV (`TIMESTAMP,ContextTokens,GeneratedTokens`, see
  benchmarks/traces/README.md); TIMESTAMP is a date-time or plain seconds, so
  synthetic traces can be written in the same format;
- the Mooncake traces' JSON lines (`timestamp` in milliseconds, `input_length`,
  `output_length`, `hash_ids`: the prompt as 512-token blocks, equal ids = a shared
  prefix), whose block ids become `TraceRequest.prefix_hashes`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...atomic import atomic_write
from ...errors import UsageError

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


@dataclass(frozen=True)
class TraceRequest:
    offset_s: float  # arrival, seconds after the first request of the trace
    prompt_tokens: int
    generated_tokens: int
    # The prompt's leading blocks (Mooncake: 512 tokens each), block i standing for the whole
    # prefix up to it; two requests that share a prefix share these. Empty when unknown.
    prefix_hashes: tuple[int, ...] = ()


class TraceError(UsageError):
    default_remedy = (
        "Give a CSV with the columns TIMESTAMP,ContextTokens,GeneratedTokens, or Mooncake JSON lines"
        " (timestamp, input_length, output_length, hash_ids); see docs/bench.md."
    )


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    # The Azure traces carry 7 fractional digits; datetime takes at most 6.
    head, dot, fraction = text.strip().partition(".")
    stamp = dt.datetime.fromisoformat(f"{head}.{fraction[:6]}" if dot else head)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


MOONCAKE_BLOCK_TOKENS = 512  # tokens per `hash_ids` block in the Mooncake traces


def trace_format(path: str | Path) -> str:
    """ "azure-csv" or "mooncake-jsonl", from the file's first non-blank character."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(4096).lstrip()
    except FileNotFoundError:
        raise TraceError(f"{path}: trace file not found") from None
    except OSError as exc:
        raise TraceError(f"{path}: cannot read the trace: {exc.strerror or exc}") from None
    return "mooncake-jsonl" if head.startswith(b"{") else "azure-csv"


def load_trace(path: str | Path) -> list[TraceRequest]:
    """Read a trace (Azure CSV or Mooncake JSONL, detected); arrival offsets start at 0 and ascend."""
    if trace_format(path) == "mooncake-jsonl":
        return _load_mooncake(Path(path))
    return _load_csv(Path(path))


def _load_mooncake(path: Path) -> list[TraceRequest]:
    rows: list[TraceRequest] = []
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
                hashes = tuple(int(h) for h in row.get("hash_ids") or ())
                rows.append(
                    TraceRequest(
                        float(row["timestamp"]) / 1000.0,
                        max(0, int(row["input_length"])),
                        max(1, int(row["output_length"])),
                        hashes,
                    )
                )
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                raise TraceError(
                    f"{path}:{line}: not a valid Mooncake trace row ({exc!r}); expected"
                    " timestamp, input_length, output_length and hash_ids"
                ) from None
    if not rows:
        raise TraceError(f"{path}: the trace has no requests")
    rows.sort(key=lambda r: r.offset_s)
    start = rows[0].offset_s
    return [dataclasses.replace(r, offset_s=r.offset_s - start) for r in rows]


def _load_csv(path: Path) -> list[TraceRequest]:
    handle = path.open(newline="", encoding="utf-8")
    rows: list[tuple[float, int, int]] = []
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                rows.append(
                    (_parse_time(row["TIMESTAMP"]), int(row["ContextTokens"]), int(row["GeneratedTokens"]))
                )
            except (TypeError, ValueError) as exc:
                raise TraceError(f"{path}:{line}: not a valid trace row ({exc})") from None
    if not rows:
        raise TraceError(f"{path}: the trace has no requests")
    rows.sort(key=lambda r: r[0])
    start = rows[0][0]
    return [TraceRequest(t - start, max(0, p), max(1, g)) for t, p, g in rows]


def scale(
    trace: Sequence[TraceRequest],
    *,
    speedup: float = 1.0,
    start_s: float = 0.0,
    duration_s: float | None = None,
) -> list[TraceRequest]:
    """The part of `trace` from `start_s` (trace time), compressed `speedup` times,
    cut after `duration_s` of replay (wall) time; offsets restart at 0."""
    if speedup <= 0:
        raise UsageError(f"--speedup must be positive, got {speedup}")
    if duration_s is not None and duration_s <= 0:
        raise UsageError(f"--duration must be positive, got {duration_s}")
    out = []
    for request in trace:
        if request.offset_s < start_s:
            continue
        offset = (request.offset_s - start_s) / speedup
        if duration_s is not None and offset >= duration_s:
            break
        out.append(dataclasses.replace(request, offset_s=offset))
    return out


def span_s(trace: Sequence[TraceRequest]) -> float:
    return trace[-1].offset_s if trace else 0.0


def write_trace(path: str | Path, trace: Iterable[TraceRequest]) -> Path:
    """Write a trace CSV (TIMESTAMP in seconds) atomically."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    for r in trace:
        writer.writerow([f"{r.offset_s:.6f}", r.prompt_tokens, r.generated_tokens])
    path = Path(path)
    atomic_write(path, text.getvalue())
    return path


# --- synthetic traces ---------------------------------------------------------


def poisson_trace(
    rate: float | Sequence[tuple[float, float]],
    duration_s: float,
    *,
    prompt_tokens: int = 256,
    generated_tokens: int | Sequence[int] = 32,
    seed: int = 0,
) -> list[TraceRequest]:
    """Poisson arrivals at `rate` per second, or piecewise: [(from_s, rate), ...].

    `generated_tokens` is a fixed length or a population to sample from (e.g. the
    lengths of a real trace, for heavy-tailed service times).
    """
    rng = random.Random(seed)
    pieces = [(0.0, float(rate))] if isinstance(rate, (int, float)) else sorted(rate)
    out: list[TraceRequest] = []
    for index, (begin, piece_rate) in enumerate(pieces):
        end = pieces[index + 1][0] if index + 1 < len(pieces) else duration_s
        t = begin
        while piece_rate > 0:
            t += rng.expovariate(piece_rate)
            if t >= end:
                break
            gen = generated_tokens if isinstance(generated_tokens, int) else rng.choice(generated_tokens)
            out.append(TraceRequest(t, prompt_tokens, gen))
    return out


def step_trace(
    base_rate: float, factor: float, *, before_s: float, after_s: float, seed: int = 0, **tokens: int
) -> list[TraceRequest]:
    """A step in load: `base_rate` for `before_s`, then `factor` times it for `after_s`."""
    return poisson_trace(
        [(0.0, base_rate), (before_s, base_rate * factor)], before_s + after_s, seed=seed, **tokens
    )


def mean_rate(trace: Sequence[TraceRequest]) -> float:
    span = span_s(trace)
    return len(trace) / span if span > 0 else math.nan
