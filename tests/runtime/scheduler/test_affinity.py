"""The dynamic policy's record of the nodes' prefix caches, its prefill backlog and output lengths."""

from __future__ import annotations

from autoglm_cli.runtime.scheduler.affinity import OutputLengthModel, PrefillBacklog
from autoglm_cli.runtime.scheduler.prefix_index import PrefixIndex


def test_a_match_is_the_longest_shared_prefix_per_node():
    index = PrefixIndex()
    index.insert("a", (1, 2, 3, 4), capacity_blocks=100)
    index.insert("b", (1, 2, 9), capacity_blocks=100)
    assert index.match((1, 2, 3, 5)) == {"a": 3, "b": 2}
    assert index.match((7, 8)) == {}


def test_the_record_evicts_a_prompt_from_its_tail_and_forgets_removed_nodes():
    index = PrefixIndex()
    index.insert("a", (1, 2, 3, 4), capacity_blocks=4)
    index.insert("a", (5, 6), capacity_blocks=4)  # two blocks must go: the first prompt's last two
    assert index.match((1, 2, 3, 4)) == {"a": 2}
    assert index.match((5, 6)) == {"a": 2}
    index.remove_node("a")
    assert index.match((5, 6)) == {}


def test_a_long_prompt_is_recorded_sparsely_but_matched_close_to_its_length():
    index = PrefixIndex()
    prompt = tuple(range(1000, 1300))  # 300 blocks
    index.insert("a", prompt, capacity_blocks=10_000)
    assert len(index._lru["a"]) < 150  # recorded: 64 + 32 + 32 + the last
    assert index.match(prompt) == {"a": 300}
    depth = index.match((*prompt[:250], 1))["a"]
    assert 250 - 250 // 16 <= depth <= 250


def test_the_backlog_counts_prefill_until_the_first_token():
    backlog = PrefillBacklog()
    backlog.add("t1", "a", 1000)
    backlog.add("t2", "a", 500)
    backlog.done("t1")
    backlog.done("t1")  # twice (first token, then completion): counted once
    assert backlog.tokens["a"] == 500


def test_output_lengths_are_learned_per_prompt_length():
    model = OutputLengthModel(prior=100)
    for _ in range(200):
        model.observe(100, 20)
        model.observe(20_000, 600)
    assert model.predict(90) < 60 < 400 < model.predict(30_000)


def test_blocks_that_stand_for_more_of_the_prompt_weigh_more_against_the_capacity():
    # The gateway hashes a prompt's first blocks only: a prompt 4x longer than its hashes reach
    # fills 4x as much of the engine's cache, so the record keeps fewer such prompts.
    light, heavy = PrefixIndex(), PrefixIndex()
    for n in range(3):
        prompt = tuple(range(100 * n, 100 * n + 10))
        light.insert("a", prompt, capacity_blocks=40)
        heavy.insert("a", prompt, capacity_blocks=40, block_weight=4.0)
    first = tuple(range(10))
    assert light.match(first) == {"a": 10}  # 30 blocks of 40: all kept
    assert heavy.match(first) == {}  # 120 of 40: only the latest prompt fits
    assert heavy.match(tuple(range(200, 210))) == {"a": 10}
