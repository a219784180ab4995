"""`PrefixIndex`: the router's record of the prefix blocks it sent to each node, an LRU per
node bounded by the node's cache size (SGLang's cache-aware router keeps the same kind of
approximate tree), read and updated on every routing decision.

Why it is built from bit masks and bulk operations: `route_task` runs on every request, a
long prompt has 100+ recorded blocks, and a Python loop per block (match, then insert,
refresh and evict) made the index most of the decision's time (p99 ~200 us at 32 nodes).
Here each node is one bit, a block's holders one int, and every per-block step is a
C-level `map` / `accumulate` / `dict.update` over the prompt's blocks; Python code runs
per node and per change of holders only. The records, their LRU order and the matches are
those of the per-block loop (tests/runtime/scheduler/test_prefix_index.py checks them
against a plain reference on random prompts).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from itertools import accumulate, compress, islice, repeat, takewhile
from operator import and_, itemgetter, not_, or_


class PrefixIndex:
    """Not every block of a prompt is recorded (see `_Layout`): block hashes are chained, so
    holding block i means holding the prefix up to it, and a long prompt's match to within a
    few blocks is as good for routing as an exact one, for a fraction of the work on every
    request. Each recorded block counts, against the node's capacity, for the blocks since
    the one recorded before it. Hashes are chained, so one never appears twice in a prompt
    (if it did, it would be recorded once, not necessarily at the same place as before)."""

    def __init__(self, stride: int = 1) -> None:
        if stride < 1:
            raise ValueError("stride must be >= 1")
        self.stride = stride
        self._holders: dict[int, int] = {}  # block hash -> bit mask of the nodes holding it
        # node -> recorded blocks: weight, oldest first (a plain dict keeps insertion order and
        # its operations cost a third of an OrderedDict's; a refresh is a pop and an insert)
        self._lru: dict[str, dict[int, int]] = {}
        self._used: dict[str, float] = {}  # node -> blocks its record stands for
        self._bit: dict[str, int] = {}  # node -> its bit in the masks
        self._node_at: list[str | None] = []  # bit position -> node (None: free)
        self._names: dict[int, tuple[str, ...]] = {}  # mask -> its nodes (masks recur: cached)

    def match(self, hashes: tuple[int, ...]) -> dict[str, int]:
        """Per node, how many leading blocks of `hashes` it holds (nodes with none left out)."""
        if not hashes:
            return {}
        layout = _layout(self.stride, len(hashes))
        # The nodes holding every recorded block so far, block by block, up to the first block
        # no node holds all the way: it only ever loses nodes.
        alive = list(
            takewhile(bool, accumulate(map(self._holders.get, layout.pick(hashes), repeat(0)), and_))
        )
        matched: dict[str, int] = {}
        if not alive:
            return matched
        depths = layout.depths
        values = list(dict.fromkeys(alive))  # each value is one run: the nodes leaving at its end
        start = 0
        for i, value in enumerate(values):
            after = values[i + 1] if i + 1 < len(values) else 0
            end = alive.index(after, start) if after else len(alive)
            matched.update(zip(self._nodes_of(value & ~after), repeat(depths[end - 1])))
            start = end
        return matched

    def _nodes_of(self, mask: int) -> tuple[str, ...]:
        names = self._names.get(mask)
        if names is None:
            names, rest, node_at = [], mask, self._node_at
            while rest:
                low = rest & -rest
                names.append(node_at[low.bit_length() - 1])
                rest ^= low
            if len(self._names) >= 4096:
                self._names.clear()
            names = self._names[mask] = tuple(names)
        return names

    def insert(
        self, node_id: str, hashes: tuple[int, ...], capacity_blocks: int, *, block_weight: float = 1
    ) -> None:
        """Record that `node_id` now holds `hashes` (most recently used), evicting its least
        recently used records past `capacity_blocks`. `block_weight`: how many blocks of the
        cache each of these blocks fills (more than one when a prompt's hashes stop before its
        end, as the gateway's do past MAX_BLOCKS: the engine still holds the whole prompt)."""
        if capacity_blocks <= 0 or not hashes:
            return
        lru = self._lru.get(node_id)
        if lru is None:
            lru = self._add_node(node_id)
        bit = self._bit[node_id]
        layout = _layout(self.stride, len(hashes))
        # Last block first, so that the first blocks are the most recent: the LRU then evicts a
        # prompt from its tail, as engines do, and what stays is always a prefix. Out and back in
        # at the end: a record held keeps its weight (> 0), a new one gets its layout's (< 0 here).
        last_first = layout.pick(hashes)[::-1]
        new_weights = layout.new_weights_last_first
        if block_weight != 1:
            new_weights = [w * block_weight for w in new_weights]
        weights = list(map(lru.pop, last_first, new_weights))
        sizes = list(map(abs, weights))
        lru.update(zip(last_first, sizes, strict=True))
        total = sum(sizes)
        fresh_blocks = (total - sum(weights)) / 2  # the new records' weights, whose sign was -
        if fresh_blocks:
            holders = self._holders
            fresh = list(compress(last_first, map((0.0).__gt__, weights)))  # 0.0: int and float weights
            masks = list(map(holders.get, fresh, repeat(0)))
            holders.update(zip(fresh, map(or_, masks, repeat(bit)), strict=True))
            self._used[node_id] += fresh_blocks
        excess = self._used[node_id] - capacity_blocks
        if excess > 0:
            self._evict(node_id, lru, bit, excess)

    def _evict(self, node_id: str, lru: dict[int, float], bit: int, excess: float) -> None:
        """Drop the oldest records until the ones left stand for `excess` fewer blocks."""
        # Every record stands for at least one block: no more than `excess` of them go.
        covered = list(accumulate(islice(lru.values(), math.ceil(excess))))
        count = min(bisect_left(covered, excess) + 1, len(covered))
        gone = list(islice(lru, count))
        deque(map(lru.__delitem__, gone), maxlen=0)
        self._used[node_id] -= covered[count - 1]
        holders = self._holders
        masks = list(map(and_, map(holders.__getitem__, gone), repeat(~bit)))
        holders.update(zip(gone, masks, strict=True))
        deque(map(holders.__delitem__, compress(gone, map(not_, masks))), maxlen=0)

    def _add_node(self, node_id: str) -> dict[int, int]:
        node_at = self._node_at
        position = node_at.index(None) if None in node_at else len(node_at)
        if position == len(node_at):
            node_at.append(node_id)
        else:
            node_at[position] = node_id
        self._names.clear()
        self._bit[node_id] = 1 << position
        self._used[node_id] = 0
        lru = self._lru[node_id] = {}
        return lru

    def remove_node(self, node_id: str) -> None:
        bit = self._bit.pop(node_id, None)
        self._used.pop(node_id, None)
        lru = self._lru.pop(node_id, None)
        if bit is None:
            return
        self._node_at[bit.bit_length() - 1] = None
        self._names.clear()
        holders = self._holders
        for h in lru or ():
            mask = holders[h] & ~bit
            if mask:
                holders[h] = mask
            else:
                del holders[h]


class _Layout:
    """Which blocks of a prompt of `blocks` blocks are recorded: every `stride`-th of the first
    64 x stride blocks, then twice as sparse each time the prompt doubles (a match is then
    exact to within ~1/64 of its length), and the last block."""

    __slots__ = ("depths", "new_weights_last_first", "pick")

    def __init__(self, stride: int, blocks: int) -> None:
        depths, step, dense = [], stride, 64 * stride
        i = stride
        while i <= blocks:
            depths.append(i)
            if i >= dense:
                dense *= 2
                step *= 2
            i += step
        if blocks and (not depths or depths[-1] != blocks):
            depths.append(blocks)
        self.depths: tuple[int, ...] = tuple(depths)  # blocks up to and including each recorded one
        # The weight of a record: the blocks since the one recorded before it; negative, last
        # block first, as `insert` uses them (it tells a new record from one held by the sign).
        weights = [d - p for d, p in zip(depths, [0, *depths[:-1]], strict=True)]
        self.new_weights_last_first: tuple[int, ...] = tuple(-w for w in reversed(weights))
        # The recorded hashes of a prompt, gathered in C (itemgetter of one index gives no tuple).
        places = [d - 1 for d in depths]
        self.pick: Callable[[tuple[int, ...]], tuple[int, ...]] = (
            itemgetter(*places) if len(places) > 1 else lambda hashes: (hashes[places[0]],)
        )


_LAYOUTS: dict[tuple[int, int], _Layout] = {}


def _layout(stride: int, blocks: int) -> _Layout:
    """The layout for a prompt of `blocks` blocks (cached: prompts repeat sizes)."""
    key = (stride, blocks)
    found = _LAYOUTS.get(key)
    if found is None:
        found = _Layout(stride, blocks)
        if len(_LAYOUTS) < 4096:
            _LAYOUTS[key] = found
    return found
