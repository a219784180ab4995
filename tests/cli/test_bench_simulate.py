"""`autoglm bench --simulate` through the CLI: JSON report, usage errors."""

from __future__ import annotations

import json

from autoglm_cli.errors import ExitCode


def mooncake(tmp_path):
    path = tmp_path / "trace.jsonl"
    rows = [
        {"timestamp": i * 100, "input_length": 1024, "output_length": 8, "hash_ids": [0, 1 + i % 4]}
        for i in range(60)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_simulate_prints_a_json_report(cli, tmp_path):
    result = cli(
        "bench",
        "--simulate",
        "--trace",
        mooncake(tmp_path),
        "--policy",
        "prefix-hash",
        "--nodes",
        "2",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    report = result.json["result"]
    assert (report["policy"], report["trace_format"], report["requests"], report["nodes"]) == (
        "prefix-hash",
        "mooncake-jsonl",
        60,
        2,
    )
    for key in ("ttft", "tpot", "e2e"):
        assert 0 < report[key]["p50_s"] <= report[key]["p90_s"] <= report[key]["p99_s"]
    assert 0 <= report["goodput"] <= 1
    assert report["prefix_hit_rate"] > 0  # the same 4 conversations come back
    assert report["node_seconds"] > 0


def test_simulate_autoscales_the_dynamic_policy(cli, tmp_path):
    result = cli(
        "bench", "--simulate", "--trace", mooncake(tmp_path), "--min-nodes", "1", "--max-nodes", "3", "--json"
    )
    assert result.exit_code == 0, result.stderr
    report = result.json["result"]
    assert report["nodes"] is None and (report["min_nodes"], report["max_nodes"]) == (1, 3)


def test_simulate_refuses_an_unknown_policy_and_a_baseline_that_should_autoscale(cli, tmp_path):
    trace = mooncake(tmp_path)
    result = cli("bench", "--simulate", "--trace", trace, "--policy", "fastest")
    assert result.exit_code == ExitCode.USAGE and "unknown policy" in result.stderr
    result = cli(
        "bench", "--simulate", "--trace", trace, "--policy", "p2c", "--min-nodes", "1", "--max-nodes", "2"
    )
    assert result.exit_code == ExitCode.USAGE and "fixed fleet" in result.stderr


def test_without_simulate_the_url_is_required(cli, tmp_path):
    result = cli("bench", "--trace", mooncake(tmp_path))
    assert result.exit_code == ExitCode.USAGE and "--simulate" in result.stderr
