"""What the dynamic policy knows about batching nodes without asking them: which prompt
prefixes each node probably holds in its prefix cache, how much prefill work it still has
ahead, and how long outputs tend to be.

- `PrefixIndex`: the router's own record of the prefix blocks it sent to each node, an LRU
  per node bounded by the node's cache size (SGLang's cache-aware router keeps the same
  kind of approximate tree). One dict from block hash to the nodes holding it, so a
  lookup walks the prompt's blocks once and stops where no node has the next one.
- `PrefillBacklog`: per node, the prompt tokens not in its cache of the requests sent
  there whose first token has not come yet: the prefill queue the next request joins.
- `OutputLengthModel`: the mean output length learned online from finished requests, per
  prompt-length bucket (log2), with the overall mean as the prior of a bucket seen rarely.
"""

from __future__ import annotations

import math
from collections import OrderedDict


class PrefixIndex:
    """Not every block of a prompt is recorded (see `_sampled`): block hashes are chained, so
    holding block i means holding the prefix up to it, and a long prompt's match to within a
    few blocks is as good for routing as an exact one, for a fraction of the work on every
    request. Each recorded block counts, against the node's capacity, for the blocks since
    the one recorded before it."""

    def __init__(self, stride: int = 1) -> None:
        if stride < 1:
            raise ValueError("stride must be >= 1")
        self.stride = stride
        self._holders: dict[int, dict[str, None]] = {}  # block hash -> nodes holding it
        self._lru: dict[str, OrderedDict[int, float]] = {}  # node -> recorded blocks (oldest first): weight
        self._used: dict[str, float] = {}  # node -> blocks its record stands for

    def _sampled(self, hashes: tuple[int, ...]) -> list[tuple[int, int]]:
        """(blocks up to and including it, hash) of the recorded blocks, in prompt order: every
        `stride`-th of the first 64 x stride blocks, then twice as sparse each time the prompt
        doubles (a match is then exact to within ~1/64 of its length), and the last block."""
        last = len(hashes)
        positions = _positions(self.stride, last)
        picked = [(i, hashes[i - 1]) for i in positions]
        if last and (not positions or positions[-1] != last):
            picked.append((last, hashes[-1]))
        return picked

    def match(self, hashes: tuple[int, ...]) -> dict[str, int]:
        """Per node, how many leading blocks of `hashes` it holds (nodes with none left out)."""
        matched: dict[str, int] = {}
        alive: set[str] | None = None
        holders_of = self._holders
        sampled = self._sampled(hashes)
        for index, (depth, h) in enumerate(sampled):
            holders = holders_of.get(h)
            if not holders:
                break
            alive = set(holders) if alive is None else alive.intersection(holders)
            if not alive:
                break
            if len(alive) == 1:  # one node left: walk on without sets
                (only,) = alive
                for depth2, h2 in sampled[index + 1 :]:
                    holders = holders_of.get(h2)
                    if not holders or only not in holders:
                        break
                    depth = depth2
                matched[only] = depth
                break
            for node_id in alive:
                matched[node_id] = depth
        return matched

    def insert(
        self, node_id: str, hashes: tuple[int, ...], capacity_blocks: int, *, block_weight: float = 1.0
    ) -> None:
        """Record `hashes` as held by `node_id`, evicting its oldest records past `capacity_blocks`.
        `block_weight`: how many blocks of the cache each of these blocks fills (more than one
        when a prompt's hashes stop before its end, as the gateway's do past MAX_BLOCKS: the
        engine still holds the whole prompt)."""
        if capacity_blocks <= 0 or not hashes:
            return
        lru = self._lru.get(node_id)
        if lru is None:
            lru = self._lru[node_id] = OrderedDict()
            self._used[node_id] = 0
        holders_of = self._holders
        touch = lru.move_to_end
        used = self._used[node_id]
        sampled = self._sampled(hashes)
        # Last block first, so that the first blocks are the most recent: the LRU then evicts a
        # prompt from its tail, as engines do, and what stays is always a prefix. Each recorded
        # block counts for the blocks since the one recorded before it.
        for index in range(len(sampled) - 1, -1, -1):
            depth, h = sampled[index]
            if h in lru:
                touch(h)
                continue
            weight = (depth - (sampled[index - 1][0] if index else 0)) * block_weight
            lru[h] = weight
            used += weight
            holders = holders_of.get(h)
            if holders is None:
                holders_of[h] = {node_id: None}
            else:
                holders[node_id] = None
        while used > capacity_blocks and lru:
            old, weight = lru.popitem(last=False)
            used -= weight
            self._forget(old, node_id)
        self._used[node_id] = used

    def remove_node(self, node_id: str) -> None:
        self._used.pop(node_id, None)
        for h in self._lru.pop(node_id, ()):
            self._forget(h, node_id)

    def _forget(self, h: int, node_id: str) -> None:
        holders = self._holders.get(h)
        if holders is not None:
            holders.pop(node_id, None)
            if not holders:
                del self._holders[h]


class PrefillBacklog:
    def __init__(self) -> None:
        self.tokens: dict[str, int] = {}  # node -> uncached prompt tokens waiting for prefill
        self._pending: dict[str, tuple[str, int]] = {}  # task -> (node, tokens)

    def add(self, task_id: str, node_id: str, tokens: int) -> None:
        self._pending[task_id] = (node_id, tokens)
        self.tokens[node_id] = self.tokens.get(node_id, 0) + tokens

    def done(self, task_id: str) -> None:
        """The task's first token came (or it ended): its prefill is behind it."""
        entry = self._pending.pop(task_id, None)
        if entry is not None:
            self.tokens[entry[0]] -= entry[1]

    def remove_node(self, node_id: str) -> None:
        self.tokens.pop(node_id, None)
        for task_id in [t for t, (n, _) in self._pending.items() if n == node_id]:
            del self._pending[task_id]


class OutputLengthModel:
    """Mean output tokens per log2 bucket of the prompt length, learned from finished requests."""

    def __init__(self, *, prior: float = 256.0, memory: float = 500.0, min_samples: int = 20) -> None:
        self._alpha = 1.0 / memory
        self.min_samples = min_samples
        self.mean = prior
        self.samples = 0
        self._buckets: dict[int, tuple[float, int]] = {}  # bucket -> (mean, samples)

    @staticmethod
    def _bucket(prompt_tokens: int) -> int:
        return max(0, prompt_tokens).bit_length()

    def observe(self, prompt_tokens: int, output_tokens: int) -> None:
        self.samples += 1
        weight = max(self._alpha, 1.0 / self.samples)
        self.mean += weight * (output_tokens - self.mean)
        key = self._bucket(prompt_tokens)
        mean, n = self._buckets.get(key, (self.mean, 0))
        n += 1
        self._buckets[key] = (mean + max(self._alpha, 1.0 / n) * (output_tokens - mean), n)

    def predict(self, prompt_tokens: int) -> float:
        """Expected output tokens: the bucket's mean, shrunk towards the overall mean while the
        bucket has few samples."""
        mean, n = self._buckets.get(self._bucket(prompt_tokens), (self.mean, 0))
        trust = n / (n + self.min_samples)
        return max(1.0, trust * mean + (1.0 - trust) * self.mean)


_POSITIONS: dict[tuple[int, int], list[int]] = {}


def _positions(stride: int, blocks: int) -> list[int]:
    """The block counts recorded for a prompt of `blocks` blocks (cached: prompts repeat sizes)."""
    key = (stride, blocks)
    found = _POSITIONS.get(key)
    if found is None:
        found, step, dense = [], stride, 64 * stride
        i = stride
        while i <= blocks:
            found.append(i)
            if i >= dense:
                dense *= 2
                step *= 2
            i += step
        if len(_POSITIONS) < 4096:
            _POSITIONS[key] = found
    return found


def blocks_for(tokens: int | None, block_tokens: int) -> int:
    return 0 if not tokens else max(1, math.ceil(tokens / block_tokens))
