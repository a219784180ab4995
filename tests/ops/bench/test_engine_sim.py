"""The batching-fleet simulation: exact on small hand-checked cases (batching, prefix cache hits,
model load time), the policies running in it unchanged, and the trace formats detected."""

from __future__ import annotations

import json

import pytest

from autoglm_cli.ops.bench.engine_sim import EngineModel, EngineSimulation
from autoglm_cli.ops.bench.sim import SimClock
from autoglm_cli.ops.bench.trace import TraceError, TraceRequest, load_trace, trace_format, write_trace
from autoglm_cli.runtime.scheduler.registry import POLICIES, make_policy

# Round numbers: a decode step costs 10 ms + 10 ms per sequence, a prompt token 1 ms.
ENGINE = EngineModel(
    step_base_s=0.01,
    step_per_seq_s=0.01,
    step_per_kv_token_s=0.0,
    prefill_base_s=0.0,
    prefill_per_token_s=0.001,
    block_tokens=100,
)


def run(trace, *, policy="round-robin", nodes=1, engine=ENGINE, **kwargs):
    clock = SimClock()
    return EngineSimulation(
        make_policy(policy, workers=nodes),
        trace,
        clock=clock,
        engine=engine,
        nodes=nodes,
        rtt_s=0.0,
        **kwargs,
    ).run()


def test_one_request_costs_its_prefill_then_one_step_per_token():
    (record,) = run([TraceRequest(0.0, 100, 11)]).records
    assert record.ttft_s == pytest.approx(0.1)  # 100 prompt tokens at 1 ms
    assert record.tpot_s == pytest.approx(0.02)  # batch of one: 10 + 10 ms a step
    assert record.e2e_s == pytest.approx(0.1 + 10 * 0.02)


def test_a_batch_decodes_together_each_step_slower():
    records = run([TraceRequest(0.0, 100, 11), TraceRequest(0.0, 100, 11)]).records
    # The first is prefilled as it comes (0.1 s), the second next (decoding pauses for it), then
    # 10 steps of a batch of two (30 ms each): both done at 0.5 s, where one after the other
    # would take 0.3 + 0.6 s. The first's TPOT carries the stall of the second's prefill.
    first, second = records
    assert (first.ttft_s, second.ttft_s) == (pytest.approx(0.1), pytest.approx(0.2))
    assert (first.tpot_s, second.tpot_s) == (pytest.approx(0.04), pytest.approx(0.03))
    assert first.e2e_s == second.e2e_s == pytest.approx(0.5)


def test_kv_capacity_bounds_the_batch():
    small = EngineModel(**{**ENGINE.__dict__, "kv_cache_tokens": 150})
    first, second = run([TraceRequest(0.0, 100, 11), TraceRequest(0.0, 100, 11)], engine=small).records
    # The second does not fit beside the first: it waits for it to finish.
    assert second.ttft_s == pytest.approx(first.e2e_s + 0.1)


def test_a_cached_prefix_is_not_prefilled_again():
    hashes = (1, 2, 3)
    first, second = run([TraceRequest(0.0, 300, 2, hashes), TraceRequest(10.0, 350, 2, (*hashes, 4))]).records
    assert (first.cached_tokens, second.cached_tokens) == (0, 300)
    assert second.ttft_s == pytest.approx(0.05)  # only the 50 new tokens


def test_the_prefix_cache_is_bounded_and_least_recently_used():
    tiny = EngineModel(**{**ENGINE.__dict__, "prefix_cache_tokens": 300})
    trace = [
        TraceRequest(0.0, 300, 2, (1, 2, 3)),
        TraceRequest(5.0, 300, 2, (7, 8, 9)),  # evicts the first prompt's blocks
        TraceRequest(10.0, 300, 2, (1, 2, 3)),
    ]
    result = run(trace, engine=tiny)
    assert [r.cached_tokens for r in result.records] == [0, 0, 0]
    assert result.prefix_hit_rate == 0.0


def test_a_new_node_serves_only_after_the_model_load():
    # One node at first; the pool asks for a second at the first tick (1 s), loading 30 s.
    trace = [TraceRequest(float(t), 100, 2) for t in range(0, 60, 2)]
    clock = SimClock()
    policy = make_policy("round-robin", workers=2)
    result = EngineSimulation(
        policy,
        trace,
        clock=clock,
        engine=ENGINE,
        nodes=1,
        autoscale=True,
        min_nodes=1,
        max_nodes=2,
        load_s=30.0,
    ).run()
    second = [r.arrived_s for r in result.records if r.node == "node-1"]
    assert second and min(second) >= 31.0
    assert all(r.node == "node-0" for r in result.records if r.arrived_s < 31.0)
    assert result.max_nodes == 2


@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_runs_a_prefix_trace_to_the_end(name):
    trace = [TraceRequest(i * 0.05, 400, 5 + i % 7, (i % 5, 100 + i)) for i in range(200)]
    result = run(trace, policy=name, nodes=3)
    assert len(result.records) == 200
    assert all(r.ttft_s > 0 and r.e2e_s >= r.ttft_s for r in result.records)


def test_no_policy_is_told_the_output_length():
    seen = []
    clock = SimClock()
    policy = make_policy("least-tokens", workers=1)
    route = policy.route_task
    policy.route_task = lambda task: seen.append(task.max_tokens) or route(task)
    EngineSimulation(
        policy, [TraceRequest(0.0, 10, 7), TraceRequest(0.0, 10, 300)], clock=clock, nodes=1
    ).run()
    assert seen == [4096, 4096]


# --- trace formats ------------------------------------------------------------------


def test_mooncake_jsonl_and_azure_csv_are_told_apart(tmp_path):
    jsonl = tmp_path / "t.jsonl"
    rows = [
        {"timestamp": 1000, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]},
        {"timestamp": 0, "input_length": 100, "output_length": 3, "hash_ids": [0]},
    ]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    csv = write_trace(tmp_path / "t.csv", [TraceRequest(0.0, 10, 2)])
    assert (trace_format(jsonl), trace_format(csv)) == ("mooncake-jsonl", "azure-csv")
    assert load_trace(jsonl) == [TraceRequest(0.0, 100, 3, (0,)), TraceRequest(1.0, 600, 5, (0, 1))]
    assert load_trace(csv) == [TraceRequest(0.0, 10, 2)]


def test_a_bad_mooncake_row_names_its_line(tmp_path):
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 1, "output_length": 1}\n{"timestamp": 1}\n')
    with pytest.raises(TraceError, match=r"t.jsonl:2: not a valid Mooncake trace row"):
        load_trace(bad)


def test_clients_may_send_no_max_tokens_and_outputs_run_to_their_end():
    seen = []
    clock = SimClock()
    policy = make_policy("least-tokens", workers=1)
    route = policy.route_task
    policy.route_task = lambda task: seen.append(task.max_tokens) or route(task)
    result = EngineSimulation(
        policy, [TraceRequest(0.0, 10, 5000)], clock=clock, nodes=1, max_tokens=None, rtt_s=0.0
    ).run()
    assert seen == [0]  # no bound sent (the Task's "unbounded")
    assert result.records[0].output_tokens == 5000
