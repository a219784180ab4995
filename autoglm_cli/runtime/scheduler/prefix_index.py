"""Which node served a prompt prefix last: the input of prefix-affinity routing (pure, bounded).

`record(hashes, node_id)` after routing a task remembers, for each of its chained prefix
hashes (`Task.prefix_hashes`), the node it went to; `matches(hashes)` answers, per node,
how many leading blocks of a new prompt that node served last (its engine likely still
holds their KV cache). Bounded: the least recently used hashes go first. A policy decides
what a match is worth against load (e.g. only while `effective_load` is within a bound).
"""

from __future__ import annotations

from collections import OrderedDict


class PrefixIndex:
    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._last: OrderedDict[int, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._last)

    def record(self, hashes: tuple[int, ...], node_id: str) -> None:
        for h in hashes:
            self._last[h] = node_id
            self._last.move_to_end(h)
        while len(self._last) > self.capacity:
            self._last.popitem(last=False)

    def matches(self, hashes: tuple[int, ...]) -> dict[str, int]:
        """node id -> leading blocks of `hashes` it served last (the deepest block it holds)."""
        found: dict[str, int] = {}
        for depth in range(len(hashes), 0, -1):
            node = self._last.get(hashes[depth - 1])
            if node is not None and node not in found:
                found[node] = depth
        return found

    def forget(self, node_id: str) -> None:
        """A node is gone (its cache with it)."""
        for h in [h for h, n in self._last.items() if n == node_id]:
            del self._last[h]
