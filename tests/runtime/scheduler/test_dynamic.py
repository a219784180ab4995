from __future__ import annotations

import random

import pytest

from autoglm_cli.runtime.scheduler.base import Node, NodeState, NoNodeAvailable, Task
from autoglm_cli.runtime.scheduler.dynamic import DynamicScheduler, DynamicSettings


def make(clock, **settings) -> DynamicScheduler:
    return DynamicScheduler(DynamicSettings(**settings), clock=clock, rng=random.Random(0))


def ready(sched: DynamicScheduler, node_id: str, models=("m",), **stats) -> Node:
    stats.setdefault("capacity", 1 << 30)  # no runtime dispatch limit: the policy's own tests
    stats.setdefault("slots", 1)
    return sched.add_node(Node(node_id, frozenset(models), state=NodeState.READY, **stats))


def task(n: int = 0, model: str = "m") -> Task:
    return Task(id=f"t{n}", model=model)


def learn(sched, node_id, seconds, times=20):
    """Feed `times` completed tasks of `seconds` each on `node_id`."""
    for i in range(times):
        sched.on_completion(task(i), sched.nodes[node_id], seconds, True)


def dispatch(sched, t: Task) -> Node:
    """Route and count the task on its node, as the runtime does."""
    node = sched.route_task(t)
    node.queued += 1
    return node


# --- route_task ----------------------------------------------------------------------


def test_routes_to_the_node_with_fewer_tasks_ahead(clock):
    sched = make(clock)
    ready(sched, "a", queued=2)
    ready(sched, "b")
    assert sched.route_task(task()).id == "b"


def test_a_burst_spreads_over_the_nodes(clock):
    sched = make(clock, max_outstanding_per_slot=None)
    for name in "abc":
        ready(sched, name)
    chosen = [dispatch(sched, task(i)).id for i in range(6)]
    assert sorted(chosen) == ["a", "a", "b", "b", "c", "c"]
    assert all(n.queued == 2 for n in sched.nodes.values())


def test_network_rtt_breaks_the_tie(clock):
    sched = make(clock)
    ready(sched, "far", rtt_ewma=0.5)
    ready(sched, "near", rtt_ewma=0.01)
    assert sched.route_task(task()).id == "near"


def test_a_slow_node_is_avoided_once_learned(clock):
    sched = make(clock, max_outstanding_per_slot=None)
    ready(sched, "slow")
    ready(sched, "fast")
    learn(sched, "slow", 2.0)
    learn(sched, "fast", 0.5)
    sched.nodes["slow"].queued = 1
    sched.nodes["fast"].queued = 2  # 3 x 0.5 s beats 2 x 2 s
    assert sched.route_task(task()).id == "fast"


def test_a_long_running_task_counts_more_than_its_mean(clock):
    sched = make(clock, max_outstanding_per_slot=None)
    ready(sched, "a")
    ready(sched, "b")
    learn(sched, "a", 1.0)
    learn(sched, "b", 1.0)
    old = dispatch(sched, task(1))
    old.queued, old.running = 0, 1
    sched.on_start(task(1), old)
    clock.advance(30.0)  # t1 has run for 30 s: likely one of the long ones
    young = dispatch(sched, task(2))
    assert young.id != old.id
    young.queued, young.running = 0, 1
    sched.on_start(task(2), young)
    clock.advance(0.1)
    assert sched.route_task(task(3)).id == young.id


def test_a_task_that_waited_in_a_node_queue_is_not_taken_for_a_long_one(clock):
    # No on_start (the runtime cannot see when a queued request starts): a waiting task's age
    # must count from the end of the one ahead of it, not from its dispatch.
    sched = make(clock, max_outstanding_per_slot=None)
    a = ready(sched, "a")
    learn(sched, "a", 1.0)
    for n in (1, 2):  # both on a, the only node yet: t2 waits behind t1
        assert sched.route_task(task(n)) is a
        a.running += 1
    clock.advance(25.0)
    b = ready(sched, "b")
    learn(sched, "b", 1.0)
    assert sched.route_task(task(3)) is b  # b is idle
    b.running += 1
    clock.advance(5.0)
    sched.on_completion(task(1), a, 30.0, True)  # t1 was a long one; t2 starts now, 30 s after dispatch
    a.running -= 1
    # b's t3 has run 5 s (likely a long one), a's t2 has just started: a finishes a new task first.
    assert sched.route_task(task(4)) is a


def sized(n: int, max_tokens: int) -> Task:
    return Task(id=f"s{n}", model="m", max_tokens=max_tokens)


def learn_sizes(sched, node_id: str, count: int = 60) -> None:
    """Completions on `node_id` whose time follows max_tokens: 0.05 s + 0.02 s per token."""
    for i in range(count):
        tokens = 1 + (i * 37) % 400
        sched.on_completion(sized(i, tokens), sched.nodes[node_id], 0.05 + 0.02 * tokens, True)


def long_on_one_short_on_other(sched) -> tuple[Node, Node]:
    """Node a runs one long task (2000 tokens, ~40 s), b three short ones (10 tokens, ~0.25 s)."""
    a, b = ready(sched, "a"), ready(sched, "b")
    learn_sizes(sched, "a")
    learn_sizes(sched, "b")
    b.state = NodeState.DRAINING  # only a can take the long one
    assert sched.route_task(sized(1, 2000)) is a
    a.running += 1
    sched.on_start(sized(1, 2000), a)
    a.state, b.state = NodeState.DRAINING, NodeState.READY
    for n in (2, 3, 4):
        assert sched.route_task(sized(n, 10)) is b
        b.running += 1
    a.state = NodeState.READY
    return a, b


def test_a_short_task_avoids_a_node_holding_a_long_one(clock):
    sched = make(clock, max_outstanding_per_slot=None)
    a, b = long_on_one_short_on_other(sched)
    clock.advance(1.0)
    # Counting tasks, a (one ahead) beats b (three ahead); counting their work, b is done in
    # under a second and a in 39 s.
    assert sched.route_task(sized(5, 10)) is b
    assert sched.expected_completion_s(a, sized(5, 10)) == pytest.approx(39.05 + 0.25, rel=0.05)


def test_without_task_estimates_tasks_are_counted(clock):
    sched = make(clock, max_outstanding_per_slot=None, task_cost=False)
    a, b = long_on_one_short_on_other(sched)
    clock.advance(1.0)
    assert sched.route_task(sized(5, 10)) is a


def test_a_node_that_got_the_long_tasks_is_not_taken_for_a_slow_one(clock):
    sched = make(clock)
    a, b = ready(sched, "a"), ready(sched, "b")
    for i in range(60):
        tokens = 1 + (i * 37) % 400
        # a gets every long task, b every short one; both run at the same speed.
        node, tokens = (a, 200 + tokens) if i % 2 else (b, 1 + tokens % 20)
        sched.on_completion(sized(i, tokens), node, 0.05 + 0.02 * tokens, True)
    assert sched.node_service_s(a) == pytest.approx(sched.node_service_s(b), rel=0.1)


def test_a_slow_node_is_found_among_tasks_of_every_size(clock):
    sched = make(clock)
    fast, slow = ready(sched, "fast"), ready(sched, "slow")
    for i in range(80):
        tokens = 1 + (i * 37) % 400
        node, factor = (slow, 2.0) if i % 2 else (fast, 1.0)
        sched.on_completion(sized(i, tokens), node, factor * (0.05 + 0.02 * tokens), True)
    assert sched.node_service_s(slow) / sched.node_service_s(fast) == pytest.approx(2.0, rel=0.1)
    # The estimate is for an average node: between the two.
    assert 1.0 < sched.task_cost.estimate(sized(0, 100)) / 2.05 < 2.0


def test_one_completion_far_off_its_estimate_barely_moves_a_node(clock):
    sched = make(clock)
    a, b = ready(sched, "a"), ready(sched, "b")
    learn_sizes(sched, "a")
    learn_sizes(sched, "b")
    assert sched.node_service_s(a) == pytest.approx(sched.node_service_s(b), rel=0.01)
    sched.on_completion(sized(99, 10), a, 100 * (0.05 + 0.02 * 10), True)  # a 100x stall
    assert sched.node_service_s(a) / sched.node_service_s(b) < 1.5


def test_only_ready_nodes_serving_the_model_are_candidates(clock):
    sched = make(clock)
    sched.add_node(Node("starting", frozenset({"m"}), state=NodeState.STARTING))
    sched.add_node(Node("draining", frozenset({"m"}), state=NodeState.DRAINING))
    sched.add_node(Node("failed", frozenset({"m"}), state=NodeState.FAILED, error="OOM"))
    ready(sched, "other", models=("x",))
    with pytest.raises(NoNodeAvailable) as info:
        sched.route_task(task())
    assert info.value.model == "m"
    ready(sched, "good")
    assert sched.route_task(task()).id == "good"


def test_power_of_two_choices_samples_when_there_are_many_nodes(clock):
    def idle_share(threshold: int) -> float:
        sched = make(clock, power_of_two_above=threshold, max_outstanding_per_slot=None)
        for i in range(19):
            ready(sched, f"busy{i}", queued=5)
        ready(sched, "idle")
        hits = 0
        for i in range(400):
            node = sched.route_task(task(i))
            sched.on_completion(task(i), node, 0.0, False)  # keep the picture constant
            hits += node.id == "idle"
        return hits / 400

    assert idle_share(threshold=50) == 1.0  # full scan: always the best node
    share = idle_share(threshold=8)  # two random candidates: the idle one is among them ~10% of the time
    assert 0.03 < share < 0.2


def test_completions_teach_service_time_and_rtt_but_failures_do_not(clock):
    sched = make(clock)
    node = ready(sched, "a")
    routed = sched.route_task(task(1))
    assert routed is node and (node.queued, node.running) == (0, 0)  # the caller counts
    sched.on_completion(task(1), node, 0.5, True, rtt=0.01)
    assert node.service_time_ewma == pytest.approx(0.5)
    assert node.rtt_ewma == pytest.approx(0.01)
    assert sched.mean_service_s == pytest.approx(0.5)
    sched.on_completion(task(2), node, 30.0, False)
    assert sched.mean_service_s == pytest.approx(0.5)
    assert node.extra["inflight"] == {}


def test_nodes_come_and_go_through_the_runtime_protocol(clock):
    sched = make(clock)
    node = Node("a", frozenset({"m"}), state=NodeState.STARTING)
    sched.on_node_change(node)
    assert sched.actual_workers == 1 and not sched.can_dispatch("m")
    node.state = NodeState.READY
    sched.on_node_change(node)
    assert sched.can_dispatch("m")
    sched.on_node_removed(node)
    assert sched.nodes == {} and sched.actual_workers == 0


def test_dispatch_limit_keeps_tasks_in_the_gateway_queue(clock):
    sched = make(clock, max_outstanding_per_slot=2)
    ready(sched, "a")
    assert sched.can_dispatch("m")
    dispatch(sched, task(1))
    dispatch(sched, task(2))
    assert not sched.can_dispatch("m")
    assert not sched.can_dispatch("other-model")


# --- predict_load / adjust_workers ------------------------------------------------------


def arrivals(sched, clock, rate: float, seconds: float, tick: float = 1.0):
    """Arrivals at `rate` per second for `seconds`, with a control tick each `tick`."""
    events = []
    for _ in range(int(seconds / tick)):
        sched.on_arrival(count=int(rate * tick))
        clock.advance(tick)
        event = sched.tick()
        if event:
            events.append(event)
    return events


def test_predicted_load_follows_the_arrival_rate(clock):
    sched = make(clock)
    arrivals(sched, clock, rate=10, seconds=20)
    assert sched.predict_load() == pytest.approx(10.0, rel=0.01)


def test_desired_workers_is_load_times_service_over_utilisation(clock):
    sched = make(clock, min_workers=1, max_workers=50, target_utilisation=0.8, service_time_prior_s=0.5)
    ready(sched, "a")
    events = arrivals(sched, clock, rate=8, seconds=30)
    # 8 req/s x 0.5 s / 0.8 = 5 nodes.
    assert sched.desired_workers == 5
    assert events[-1].reason == "forecast" and events[-1].direction == "up"


def test_desired_workers_stays_within_min_and_max(clock):
    sched = make(clock, min_workers=2, max_workers=3, service_time_prior_s=1.0)
    assert sched.desired_workers == 2
    arrivals(sched, clock, rate=100, seconds=10)
    assert sched.desired_workers == 3


def test_a_growing_queue_scales_up_at_once_before_the_forecast_sees_it(clock):
    sched = make(clock, min_workers=1, max_workers=20, service_time_prior_s=1.0, drain_s=10.0)
    ready(sched, "a")
    arrivals(sched, clock, rate=1, seconds=30)
    before = sched.desired_workers
    sched.on_arrival(count=40)  # a burst lands between two ticks...
    sched.set_queue_depth(39)  # ...and queues up in the gateway
    clock.advance(1.0)
    event = sched.tick()
    assert event is not None and event.reason == "panic"
    assert event.desired > before + 3
    assert event.backlog == 39
    assert sched.panic


def test_no_scale_down_within_the_stable_window_after_a_scale_up(clock):
    sched = make(clock, min_workers=1, max_workers=20, service_time_prior_s=1.0, stable_window_s=60.0)
    arrivals(sched, clock, rate=8, seconds=20)
    high = sched.desired_workers
    assert high >= 8
    # Load drops by a quarter (not a collapse): the pool holds for the stable window.
    downs = [e for e in arrivals(sched, clock, rate=6, seconds=35) if e.direction == "down"]
    assert downs == [] and sched.desired_workers == high
    downs = [e for e in arrivals(sched, clock, rate=6, seconds=60) if e.direction == "down"]
    assert downs and downs[0].reason == "stable-window"
    assert downs[0].at - sched._last_up >= 60.0
    assert sched.desired_workers < high


def test_a_collapse_in_demand_releases_capacity_early(clock):
    sched = make(clock, min_workers=1, max_workers=20, service_time_prior_s=1.0, release_window_s=3.0)
    arrivals(sched, clock, rate=10, seconds=15)
    assert sched.desired_workers >= 10
    events = arrivals(sched, clock, rate=0, seconds=15)
    assert any(e.reason == "release" for e in events)
    assert sched.desired_workers == 1


def test_the_forecast_alone_grows_the_pool_only_past_the_band(clock):
    sched = make(
        clock,
        min_workers=1,
        max_workers=20,
        service_time_prior_s=1.0,
        target_utilisation=0.8,
        scale_up_utilisation=1.5,
    )
    arrivals(sched, clock, rate=4, seconds=30)
    size = sched.desired_workers  # 4 / 0.8 = 5
    assert size == 5
    # 7 req/s would load 5 nodes to 140%: the forecast wants 9 at 0.8, but no queue says so yet.
    events = arrivals(sched, clock, rate=7, seconds=15)
    assert events == [] and sched.desired_workers == size
    # Past 150% it grows, to the target size for the forecast of that moment.
    events = arrivals(sched, clock, rate=9, seconds=15)
    assert [e.reason for e in events] == ["forecast"]
    assert sched.desired_workers >= 10


def test_a_queue_inside_the_band_still_grows_the_pool(clock):
    sched = make(clock, min_workers=1, max_workers=20, service_time_prior_s=1.0, scale_up_utilisation=1.5)
    arrivals(sched, clock, rate=4, seconds=30)
    for i in range(5):
        ready(sched, f"n{i}", running=1)
    sched.set_queue_depth(12)  # more than one task waiting per node
    events = arrivals(sched, clock, rate=6, seconds=1)
    assert [e.reason for e in events] == ["panic"]


def test_scale_events_reach_listeners_with_their_evidence(clock):
    sched = make(clock, max_workers=10, service_time_prior_s=1.0)
    seen = []
    sched.listeners.append(seen.append)
    arrivals(sched, clock, rate=5, seconds=10)
    assert seen and seen[0].previous == 1
    fields = seen[0].log_fields()
    assert fields["event"] == "scale" and fields["direction"] == "up"
    assert {"from", "to", "reason", "predicted_load", "recent_rate", "backlog"} <= set(fields)
    assert sched.scale_events["up"] == len(seen)


def test_nodes_to_remove_prefers_starting_then_idle_nodes(clock):
    sched = make(clock)
    ready(sched, "busy", running=1, queued=1)
    ready(sched, "idle")
    sched.add_node(Node("booting", frozenset({"m"}), state=NodeState.STARTING))
    assert [n.id for n in sched.nodes_to_remove(2)] == ["booting", "idle"]


def test_settings_are_validated():
    with pytest.raises(ValueError):
        DynamicSettings(min_workers=5, max_workers=2)
    with pytest.raises(ValueError):
        DynamicSettings(target_utilisation=1.5)


def test_from_config_reads_workers_and_autoscale(tmp_path):
    from autoglm_cli.config import parse_config

    config = parse_config(
        "scheduler: priority-based\n"
        "workers: {min: 2, max: 9}\n"
        "autoscale: {target_utilisation: 0.6, stable_window: 2m, forecaster: holt, forecast_alpha: 0.5}\n",
        environ={},
    )
    sched = DynamicScheduler.from_config(config)
    s = sched.settings
    assert (s.min_workers, s.max_workers, s.target_utilisation) == (2, 9, 0.6)
    assert s.stable_window_s == 120.0 and s.forecaster == "holt" and s.priorities
    assert sched.desired_workers == 2


def test_from_config_turns_bad_values_into_config_errors():
    from autoglm_cli.config import parse_config
    from autoglm_cli.errors import ConfigError

    config = parse_config("autoscale: {target_utilisation: 1.7}\n", file="deploy.yaml", environ={})
    with pytest.raises(ConfigError) as info:
        DynamicScheduler.from_config(config)
    assert "deploy.yaml" in info.value.message and "target utilisation" in info.value.message


def test_the_prefix_index_update_waits_for_record_routed_but_never_misses_a_decision(clock):
    sched = make(clock, slots_per_node=64, prefix_cache_tokens=100_000)
    ready(sched, "a", slots=64)
    ready(sched, "b", slots=64)
    prompt = Task(id="t1", model="m", prompt_tokens=4096, prefix_hashes=(11, 12, 13, 14, 15, 16, 17, 18))
    first = sched.route_task(prompt)
    assert sched.prefix_index.match(prompt.prefix_hashes) == {}  # not yet: the request goes first
    sched.record_routed()
    assert sched.prefix_index.match(prompt.prefix_hashes) == {first.id: 8}
    # Without record_routed in between, the next decision records the earlier one first.
    again = Task(id="t2", model="m", prompt_tokens=4096, prefix_hashes=(21, 22, 23, 24, 25, 26, 27, 28))
    second = sched.route_task(again)
    follow = Task(id="t3", model="m", prompt_tokens=4608, prefix_hashes=(*again.prefix_hashes, 29))
    assert sched.route_task(follow) is second  # its conversation's node: the cached prefix counted
    sched.remove_node(second.id)  # records what is pending first, then forgets the node
    assert sched.prefix_index.match(follow.prefix_hashes) == {}


def test_the_prefix_record_counts_a_long_prompt_for_all_its_tokens_not_its_hashed_blocks():
    # The gateway hashes at most a prompt's first blocks; the engine caches all of it. A node
    # of 6,400 KV tokens (100 blocks of 64) holds two prompts of 3,200 tokens, but not two of
    # 4,800 whose 50 hashes each stand for 96 tokens: the record forgets the older one's tail.
    for prompt_tokens, kept in ((3_200, True), (4_800, False)):
        policy = make(lambda: 0.0, prefix_block_tokens=64)
        ready(policy, "a", slots=64, kv_cache_tokens=6_400)
        first, second = tuple(range(50)), tuple(range(100, 150))
        for n, hashes in enumerate((first, second)):
            policy.route_task(Task(id=f"t{n}", model="m", prompt_tokens=prompt_tokens, prefix_hashes=hashes))
        policy.record_routed()
        assert (policy.prefix_index.match(first).get("a", 0) == 50) is kept
        assert policy.prefix_index.match(second) == {"a": 50}
