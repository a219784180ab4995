"""What the dynamic policy knows about batching nodes without asking them: which prompt
prefixes each node probably holds in its prefix cache, how much prefill work it still has
ahead, and how long outputs tend to be.

- `PrefixIndex` (its own module, prefix_index.py): the router's own record of the prefix
  blocks it sent to each node, an LRU per node bounded by the node's cache size.
- `PrefillBacklog`: per node, the prompt tokens not in its cache of the requests sent
  there whose first token has not come yet: the prefill queue the next request joins.
- `OutputLengthModel`: the mean output length learned online from finished requests, per
  prompt-length bucket (log2), with the overall mean as the prior of a bucket seen rarely.
"""

from __future__ import annotations

import math


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


def blocks_for(tokens: int | None, block_tokens: int) -> int:
    return 0 if not tokens else max(1, math.ceil(tokens / block_tokens))
