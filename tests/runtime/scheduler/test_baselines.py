"""Each baseline's defining behaviour, the registry, and the config names reaching them."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from autoglm_cli.config import Config
from autoglm_cli.runtime.scheduler import make_scheduler
from autoglm_cli.runtime.scheduler.base import Node, NodeState, Task
from autoglm_cli.runtime.scheduler.baselines import BASELINES, LeastRequests
from autoglm_cli.runtime.scheduler.dynamic import DynamicScheduler, DynamicSettings
from autoglm_cli.runtime.scheduler.registry import POLICIES, make_policy


def fleet(policy, count: int = 3) -> list[Node]:
    nodes = []
    for i in range(count):
        node = Node(f"n{i}", frozenset({"m"}), state=NodeState.READY, capacity=1 << 30, slots=64)
        policy.on_node_change(node)
        nodes.append(node)
    return nodes


def send(policy, task: Task) -> Node:
    node = policy.route_task(task)
    node.running += 1  # the runtime's bookkeeping
    return node


def task(n: int, *, prompt: int = 100, hashes: tuple[int, ...] = ()) -> Task:
    return Task(id=f"t{n}", model="m", prompt_tokens=prompt, max_tokens=4096, prefix_hashes=hashes)


def test_every_policy_is_made_by_name_and_an_unknown_name_is_refused():
    assert set(POLICIES) == {"dynamic", "static", *BASELINES}
    for name in POLICIES:
        policy = make_policy(name, DynamicSettings(min_workers=2, max_workers=2), workers=2)
        fleet(policy)
        assert policy.route_task(task(0)).id.startswith("n")
    with pytest.raises(ValueError, match="unknown scheduling policy"):
        make_policy("fastest")


def test_config_names_reach_the_baselines_and_old_names_still_work():
    assert isinstance(make_scheduler(Config(scheduler="least-requests")), LeastRequests)
    assert isinstance(make_scheduler(Config(scheduler="priority-based")), DynamicScheduler)


def test_round_robin_takes_turns():
    policy = make_policy("round-robin", workers=3)
    fleet(policy)
    assert [send(policy, task(i)).id for i in range(6)] == ["n0", "n1", "n2", "n0", "n1", "n2"]


def test_random_uses_every_node():
    policy = make_policy("random", workers=3, rng=random.Random(3))
    fleet(policy)
    assert set(Counter(policy.route_task(task(i)).id for i in range(60))) == {"n0", "n1", "n2"}


def test_least_requests_joins_the_shortest_queue():
    policy = make_policy("least-requests", workers=3)
    a, b, c = fleet(policy)
    a.running, b.running, c.running = 5, 1, 3
    assert policy.route_task(task(0)) is b


def test_least_tokens_counts_prompt_and_max_tokens_until_completion():
    policy = make_policy("least-tokens", workers=2)
    a, b = fleet(policy, 2)
    first = send(policy, task(0, prompt=10_000))
    other = send(policy, task(1, prompt=10))
    assert first is not other
    # The long prompt's node stays heavier until that request completes.
    assert send(policy, task(2, prompt=10)) is other
    policy.on_completion(task(0, prompt=10_000), first, 1.0, True)
    first.running -= 1
    assert policy.outstanding_tokens(first) == 0
    assert policy.route_task(task(3)) is first


def test_p2c_takes_the_lighter_of_two():
    policy = make_policy("p2c", workers=2)
    a, b = fleet(policy, 2)
    send(policy, task(0, prompt=5000))
    heavy = a if policy.outstanding_tokens(a) else b
    for i in range(1, 10):
        node = policy.route_task(task(i))
        assert node is not heavy
        policy.on_completion(task(i), node, 1.0, True)


def test_prefix_hash_keeps_a_prefix_on_one_node_until_its_load_bound():
    policy = make_policy("prefix-hash", workers=4)
    fleet(policy, 4)
    homes = {policy.route_task(task(i, hashes=(7, 8, 100 + i))).id for i in range(5)}
    assert len(homes) == 1  # same first two blocks: same node (nothing counted as running)
    spread = [send(policy, task(10 + i, hashes=(7, 8))).id for i in range(8)]
    # Bounded load: once that node holds 1.25x the mean, the next node on the ring takes the rest.
    assert len(set(spread)) > 1
    assert max(Counter(spread).values()) <= 4


def test_dynamic_on_batching_nodes_follows_the_prefix_cache_but_not_into_a_backlog():
    clock = lambda: 0.0  # noqa: E731
    policy = make_policy(
        "dynamic", DynamicSettings(min_workers=2, max_workers=2, running_weight_tokens=0), clock
    )
    a, b = fleet(policy, 2)
    conversation = tuple(range(20))  # a 10k-token prompt as 20 blocks of 500
    home = send(policy, task(0, prompt=10_000, hashes=conversation))
    policy.on_first_token(task(0), home)  # its prefill is done: the prefix is cached there
    follow_up = send(policy, task(1, prompt=10_500, hashes=(*conversation, 99)))
    assert follow_up is home  # 500 tokens to prefill there, 10,500 elsewhere
    policy.on_first_token(task(1), home)
    # A long prompt queued for prefill on that node outweighs the prefix it holds there.
    policy.prefill_backlog.add("queued", home.id, 40_000)
    other = b if home is a else a
    assert policy.route_task(task(3, prompt=10_500, hashes=(*conversation, 98))) is other


def test_dynamic_learns_output_lengths_from_completions_only():
    policy = make_policy("dynamic", DynamicSettings(min_workers=1, max_workers=1))
    (node,) = fleet(policy, 1)
    before = policy.output_lengths.predict(1000)
    for i in range(50):
        policy.on_completion(task(i, prompt=1000), node, 1.0, True, output_tokens=40)
    assert before != 40 and policy.output_lengths.predict(1000) == pytest.approx(40, rel=0.2)


def test_with_a_model_load_dynamic_keeps_the_recent_peak_as_a_floor(clock):
    def run(load_time_s: float) -> int:
        clock.now = 1000.0
        settings = DynamicSettings(
            min_workers=1, max_workers=10, slots_per_node=1, load_time_s=load_time_s, service_time_prior_s=1.0
        )
        policy = DynamicScheduler(settings, clock=clock, rng=random.Random(0))
        fleet(policy, 1)
        for _ in range(10):  # a 10 s burst of 5 requests a second
            for _ in range(5):
                policy.on_arrival(task(0))
            clock.advance(1.0)
            policy.tick()
        for _ in range(120):  # then two quiet minutes
            clock.advance(1.0)
            policy.tick()
        return policy.desired_workers

    assert run(0.0) == 1  # react only: the burst is forgotten
    assert run(60.0) >= 5  # a node for the next such burst would load too late: keep them
