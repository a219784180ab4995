"""`autoglm bench` against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from autoglm_cli.ops.bench.trace import TraceRequest, write_trace
from tests.conftest import run_autoglm
from tests.ops.bench.openai_server import StubState, serve


@pytest.fixture
def trace_file(tmp_path):
    # 40 requests over 2 s of trace time, prompts and outputs of known lengths.
    trace = [TraceRequest(i * 0.05, 10 + i, 1 + i % 7) for i in range(40)]
    return write_trace(tmp_path / "trace.csv", trace)


def test_replays_the_trace_and_reports_latency_nodes_and_a_plot(cli, tmp_path, trace_file):
    state = StubState(slots=3)
    png = tmp_path / "bench.png"
    records = tmp_path / "requests.jsonl"
    with serve(state) as url:
        result = cli(
            "bench",
            url,
            "--trace",
            trace_file,
            "--speedup",
            "2",
            "--plot",
            png,
            "--requests",
            records,
            "--json",
        )
    assert result.exit_code == 0, result.stderr
    doc = result.json
    assert doc["command"] == "bench" and doc["ok"] is True
    report = doc["result"]
    assert report["model"] == "stub-model"
    assert (report["requests"], report["succeeded"], report["failed"]) == (40, 40, 0)
    latency = report["latency"]
    assert latency["count"] == 40
    assert 0 < latency["p50_s"] <= latency["p90_s"] <= latency["p99_s"] <= latency["max_s"]
    # Streamed: the first token of each, and the gaps between tokens of the 34 with two or more.
    ttft, tpot = report["ttft"], report["tpot"]
    assert ttft["count"] == 40 and 0 < ttft["p50_s"] <= ttft["p99_s"] <= latency["max_s"]
    assert ttft["p50_s"] <= latency["p50_s"]
    assert tpot["count"] == sum(1 for i in range(40) if 1 + i % 7 >= 2) == 34
    assert 0 < tpot["p50_s"] <= tpot["p99_s"]
    assert report["throughput_rps"] > 0
    # Output tokens: the server's usage counts, summed.
    assert report["output_tokens_per_s"] > 0
    # The node count came from the server's /metrics.
    assert report["nodes"]["max"] == 3 and report["nodes"]["samples"] >= 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["plot"] == str(png)

    # Prompts of the trace's token counts, max_tokens = its output lengths, every request sent once.
    assert len(state.received) == 40
    by_prompt = sorted(state.received, key=lambda b: int(b["messages"][0]["content"].split()[0][1:]))
    for i, body in enumerate(by_prompt):
        assert len(body["messages"][0]["content"].split()) == 10 + i
        assert body["max_tokens"] == 1 + i % 7
        assert body["model"] == "stub-model"
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}

    # Time scaling: each request was scheduled at its trace offset / speedup.
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert [r["scheduled_s"] for r in lines] == pytest.approx([i * 0.05 / 2 for i in range(40)])
    assert all(r["latency_s"] >= r["done_s"] - r["sent_s"] for r in lines)
    assert all(0 < r["ttft_s"] <= r["latency_s"] for r in lines)
    assert [r["tpot_s"] is None for r in lines] == [r["max_tokens"] == 1 for r in lines]


def test_duration_and_start_cut_the_trace(cli, trace_file):
    state = StubState()
    with serve(state) as url:
        result = cli(
            "bench", url, "--trace", trace_file, "--start", "1", "--duration", "0.5", "--no-plot", "--json"
        )
    assert result.exit_code == 0, result.stderr
    # Trace offsets 1.00 .. 1.45 s (10 requests) fall inside 0.5 s of replay from t=1 s.
    assert result.json["result"]["requests"] == 10
    assert len(state.received) == 10


def test_failed_requests_are_counted_and_fail_the_check(cli, trace_file):
    state = StubState(fail_every=4)
    with serve(state) as url:
        strict = cli("bench", url, "--trace", trace_file, "-s", "4", "--no-plot", "--json")
        lenient = cli(
            "bench", url, "--trace", trace_file, "-s", "4", "--no-plot", "--json", "--max-error-rate", "0.3"
        )
    assert strict.exit_code == 1
    report = strict.json["result"]
    assert report["failed"] == 10 and report["errors"] == {"http 500": 10}
    assert report["error_rate"] == pytest.approx(0.25)
    assert report["latency"]["count"] == 30  # percentiles of the successful requests only
    assert lenient.exit_code == 0


def test_fallbacks_to_the_backup_model_are_counted(cli, trace_file):
    with serve(StubState(fallback_every=5)) as url:
        result = cli("bench", url, "--trace", trace_file, "-s", "4", "--no-plot", "--json")
    assert result.json["result"]["fallbacks"] == 8


def test_an_endpoint_without_node_metrics_still_gets_a_plot(cli, tmp_path, trace_file):
    png = tmp_path / "plain.png"
    with serve(StubState(metrics=False)) as url:
        result = cli("bench", url, "--trace", trace_file, "-s", "4", "--plot", png, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json["result"]["nodes"] is None
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_the_api_key_is_sent_and_never_shown(cli, trace_file, monkeypatch):
    key = "ak_" + "x" * 40
    state = StubState(api_key=key)
    with serve(state) as url:
        refused = cli("bench", url, "--trace", trace_file, "--no-plot", "--json")
        monkeypatch.setenv("AUTOGLM_API_KEY", key)
        accepted = cli("bench", url, "--trace", trace_file, "-s", "4", "--no-plot", "--json")
    assert refused.exit_code == 2
    assert "invalid API key" in refused.json["error"]["message"]
    assert "--api-key" in refused.json["error"]["remedy"]
    assert accepted.exit_code == 0, accepted.stderr
    assert key not in accepted.stdout + accepted.stderr


def test_an_unreachable_endpoint_is_an_environment_failure(cli, trace_file):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli("bench", f"http://127.0.0.1:{port}/v1", "--trace", trace_file, "--no-plot", "--json")
    assert result.exit_code == 3
    assert "cannot reach" in result.json["error"]["message"]


def test_bad_input_is_a_usage_error(cli, tmp_path, trace_file):
    with serve(StubState()) as url:
        missing = cli("bench", url, "--trace", tmp_path / "none.csv", "--no-plot")
        speed = cli("bench", url, "--trace", trace_file, "--speedup", "0", "--no-plot")
        window = cli("bench", url, "--trace", trace_file, "--start", "100", "--no-plot")
    assert missing.exit_code == 2 and "trace file not found" in missing.stderr
    assert speed.exit_code == 2 and "--speedup must be positive" in speed.stderr
    assert window.exit_code == 2 and "no request" in window.stderr


def test_human_output_as_a_real_process(tmp_path, trace_file):
    with serve(StubState()) as url:
        result = run_autoglm("bench", url, "--trace", trace_file, "--no-plot", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "40 sent, 40 ok, 0 failed" in result.stdout
    assert "p99" in result.stdout and "nodes" in result.stdout
    assert "time to first token" in result.stdout and "time per output token" in result.stdout
