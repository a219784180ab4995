from __future__ import annotations

from itertools import pairwise

import pytest

from autoglm_cli.errors import ExitCode
from autoglm_cli.ops.bench.trace import (
    TraceError,
    TraceRequest,
    load_trace,
    mean_rate,
    poisson_trace,
    scale,
    step_trace,
    write_trace,
)
from tests.conftest import REPO_ROOT

CODE_TRACE = REPO_ROOT / "benchmarks" / "traces" / "AzureLLMInferenceTrace_code.csv"


def test_the_shipped_azure_trace_loads_with_offsets_from_zero():
    trace = load_trace(CODE_TRACE)
    assert len(trace) == 8819
    assert trace[0].offset_s == 0.0
    assert all(a.offset_s <= b.offset_s for a, b in pairwise(trace))
    # The first rows of the file: 18:17:03.9799600 (4808, 10) then 18:17:04.0319600 (3180, 8).
    assert (trace[0].prompt_tokens, trace[0].generated_tokens) == (4808, 10)
    assert trace[1].offset_s == pytest.approx(0.052, abs=1e-6)
    assert 3400 < trace[-1].offset_s < 3500


def test_the_attribution_ships_with_the_traces():
    readme = (CODE_TRACE.parent / "README.md").read_text()
    assert "CC-BY" in readme and "Splitwise" in readme


def test_numeric_timestamps_and_a_round_trip(tmp_path):
    trace = [TraceRequest(0.0, 10, 5), TraceRequest(0.5, 20, 1), TraceRequest(2.25, 30, 7)]
    path = write_trace(tmp_path / "t.csv", trace)
    assert load_trace(path) == trace
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when,prompt\n1,2\n", "missing column(s) TIMESTAMP, ContextTokens, GeneratedTokens"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "has no requests"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,2\nyesterday,1,2\n", ":3: not a valid trace row"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n0,many,2\n", ":2: not a valid trace row"),
    ],
)
def test_bad_traces_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TraceError) as info:
        load_trace(path)
    assert message in info.value.message
    assert info.value.exit_code == ExitCode.USAGE


def test_a_missing_trace_file_is_a_usage_error(tmp_path):
    with pytest.raises(TraceError, match="not found"):
        load_trace(tmp_path / "nope.csv")


def test_scale_compresses_cuts_and_restarts_at_zero():
    trace = [TraceRequest(float(t), 1, 1) for t in range(0, 100, 10)]
    fast = scale(trace, speedup=10.0)
    assert [r.offset_s for r in fast] == [float(t) for t in range(10)]
    window = scale(trace, speedup=2.0, start_s=30.0, duration_s=15.0)
    assert [r.offset_s for r in window] == [0.0, 5.0, 10.0]
    with pytest.raises(Exception, match="--speedup must be positive"):
        scale(trace, speedup=0)


def test_synthetic_traces_have_the_rates_they_promise():
    steady = poisson_trace(20.0, 100.0, seed=3)
    assert mean_rate(steady) == pytest.approx(20.0, rel=0.1)
    stepped = step_trace(5.0, 4.0, before_s=50.0, after_s=50.0, seed=3)
    before = sum(1 for r in stepped if r.offset_s < 50.0)
    after = len(stepped) - before
    assert after / before == pytest.approx(4.0, rel=0.25)
    lengths = poisson_trace(10.0, 20.0, generated_tokens=[1, 1000], seed=1)
    assert {r.generated_tokens for r in lengths} == {1, 1000}
