"""The prefix index (bit masks, bulk updates) against a plain reference: the per-block loop it
replaced, on random conversations of chained block hashes."""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest

from autoglm_cli.runtime.scheduler.prefix_index import PrefixIndex


class ReferenceIndex:
    """The record as a loop over the recorded blocks: an OrderedDict LRU per node, a set of
    holders per block, a match that intersects the holders block by block."""

    def __init__(self, stride: int = 1) -> None:
        self.stride = stride
        self.holders: dict[int, set[str]] = {}
        self.lru: dict[str, OrderedDict[int, int]] = {}
        self.used: dict[str, int] = {}

    def sampled(self, hashes: tuple[int, ...]) -> list[tuple[int, int]]:
        depths, step, dense, i = [], self.stride, 64 * self.stride, self.stride
        while i <= len(hashes):
            depths.append(i)
            if i >= dense:
                dense, step = dense * 2, step * 2
            i += step
        if hashes and (not depths or depths[-1] != len(hashes)):
            depths.append(len(hashes))
        return [(d, hashes[d - 1]) for d in depths]

    def match(self, hashes: tuple[int, ...]) -> dict[str, int]:
        matched: dict[str, int] = {}
        alive: set[str] | None = None
        for depth, h in self.sampled(hashes):
            alive = set(self.holders.get(h, ())) if alive is None else alive & self.holders.get(h, set())
            if not alive:
                break
            for node in alive:
                matched[node] = depth
        return matched

    def insert(self, node: str, hashes: tuple[int, ...], capacity_blocks: int) -> None:
        if capacity_blocks <= 0 or not hashes:
            return
        lru = self.lru.setdefault(node, OrderedDict())
        self.used.setdefault(node, 0)
        sampled = self.sampled(hashes)
        for index in range(len(sampled) - 1, -1, -1):
            depth, h = sampled[index]
            if h in lru:
                lru.move_to_end(h)
                continue
            lru[h] = depth - (sampled[index - 1][0] if index else 0)
            self.used[node] += lru[h]
            self.holders.setdefault(h, set()).add(node)
        while self.used[node] > capacity_blocks and lru:
            h, weight = lru.popitem(last=False)
            self.used[node] -= weight
            self.forget(h, node)

    def remove_node(self, node: str) -> None:
        self.used.pop(node, None)
        for h in self.lru.pop(node, ()):
            self.forget(h, node)

    def forget(self, h: int, node: str) -> None:
        self.holders[h].discard(node)
        if not self.holders[h]:
            del self.holders[h]


class Conversations:
    """Prompts as a router sees them: block hashes chained over the blocks before, each prompt
    a new conversation (sometimes behind a shared system prompt) or an earlier one continued."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ids: dict[tuple[int, ...], int] = {}
        self.prompts: list[tuple[int, ...]] = []

    def chained(self, blocks: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(self.ids.setdefault(blocks[: i + 1], len(self.ids) + 1) for i in range(len(blocks)))

    def next(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        rng = self.rng
        if self.prompts and rng.random() < 0.6:
            earlier = rng.choice(self.prompts)
            keep = earlier[: rng.randint(1, len(earlier))] if rng.random() < 0.3 else earlier
            blocks = keep + tuple(rng.randrange(10**9) for _ in range(rng.randint(0, 40)))
        else:
            system = (0,) * rng.choice((0, 0, 1, 3))
            blocks = system + tuple(rng.randrange(10**9) for _ in range(rng.choice((1, 5, 30, 90, 200))))
        if not blocks:
            blocks = (rng.randrange(10**9),)
        self.prompts.append(blocks)
        return blocks, self.chained(blocks)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("stride", [1, 3])
def test_matches_and_evictions_are_those_of_the_per_block_loop(seed, stride):
    rng = random.Random(seed)
    conversations = Conversations(rng)
    index, reference = PrefixIndex(stride), ReferenceIndex(stride)
    nodes = [f"node-{i}" for i in range(rng.choice((2, 5, 40)))]  # 40: masks wider than a word
    capacity = rng.choice((8, 60, 400))
    for step in range(600):
        _, hashes = conversations.next()
        assert index.match(hashes) == reference.match(hashes), step
        node = rng.choice(nodes)
        blocks = capacity if rng.random() < 0.9 else rng.randint(0, capacity)  # capacities can shrink
        index.insert(node, hashes, blocks)
        reference.insert(node, hashes, blocks)
        if rng.random() < 0.01:
            gone = rng.choice(nodes)
            index.remove_node(gone)
            reference.remove_node(gone)
    for node, lru in reference.lru.items():
        assert list(index._lru[node].items()) == list(lru.items())  # same records, same order
        assert index._used[node] == reference.used[node]
    assert {h: set(index._nodes_of(mask)) for h, mask in index._holders.items()} == reference.holders


def test_a_removed_nodes_bit_goes_to_the_next_node_without_its_records():
    index = PrefixIndex()
    index.insert("a", (1, 2, 3), capacity_blocks=10)
    index.insert("b", (1, 2), capacity_blocks=10)
    index.remove_node("a")
    index.insert("c", (7,), capacity_blocks=10)  # takes a's bit
    assert index.match((1, 2, 3)) == {"b": 2}
    assert index.match((7,)) == {"c": 1}
