"""The simple routing policies `dynamic` is judged against, selectable by name like it.

Each routes over a fixed pool (`workers`; they never resize it) and sees only what a
router sees: the requests it sent to each node and not yet finished (`node.queued +
node.running`, which the runtime keeps), the prompt length, `max_tokens` as the client
set it, and the prompt's prefix hashes. None knows a request's output length.

- `round-robin`: the ready nodes in turn (a node without a free slot skipped while one has).
- `random`: a node at random.
- `least-requests`: the fewest outstanding requests (join the shortest queue).
- `least-tokens`: the fewest outstanding tokens, prompt + max_tokens of each request sent
  there (what a router can count: the output length is unknown until the end).
- `p2c`: of two nodes drawn at random, the one with fewer outstanding tokens.
- `prefix-hash`: consistent hashing on the prompt's prefix (its first `prefix_tokens`,
  1024 by default: as many blocks of `block_tokens` as that takes) with bounded load
  (Mirrokni et al.: a node takes at most `load_bound` x the mean load, else the next one
  on the ring), what vLLM production-stack's and llm-d's prefix
  routing approximate: the same conversation lands where its KV cache is.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import operator
import random

from .base import MONOTONIC, BaseScheduler, Clock, Node, NodeState, NoNodeAvailable, Task

_MASK64 = (1 << 64) - 1


def mix64(value: int) -> int:
    """splitmix64's finaliser: spreads consecutive ids (Mooncake's hash_ids) over the ring."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class RoutingPolicy(BaseScheduler):
    """A fixed pool and one routing rule (`choose`); the bookkeeping the runtime and the
    simulation call is here."""

    name = ""

    def __init__(
        self, workers: int = 1, *, clock: Clock = MONOTONIC, rng: random.Random | None = None
    ) -> None:
        super().__init__(clock=clock)
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self.workers = workers
        self.desired_workers = workers
        self._rng = rng or random.Random(0)
        self._tokens: dict[str, int] = {}  # node id -> outstanding prompt + max_tokens
        self._sent: dict[str, tuple[str, int]] = {}  # task id -> (node id, tokens counted)

    # -- the decisions -----------------------------------------------------------

    def adjust_workers(self, target_load: float) -> int:
        return self.workers

    def route_task(self, task: Task) -> Node:
        nodes = self.candidates(task.model)
        if not nodes:
            raise NoNodeAvailable(task.model)
        with_room = [n for n in nodes if n.free_slots > 0]
        node = self.choose(task, with_room or nodes)
        tokens = max(0, task.prompt_tokens) + max(0, task.max_tokens)
        self._sent[task.id] = (node.id, tokens)
        self._tokens[node.id] = self._tokens.get(node.id, 0) + tokens
        return node

    def choose(self, task: Task, nodes: list[Node]) -> Node:
        raise NotImplementedError

    # -- observations ------------------------------------------------------------

    def on_completion(
        self,
        task: Task,
        node: Node,
        service_time: float,
        ok: bool,
        *,
        rtt: float | None = None,
        output_tokens: int | None = None,
    ) -> None:
        super().on_completion(task, node, service_time, ok)
        sent = self._sent.pop(task.id, None)
        if sent is not None:
            self._tokens[sent[0]] = self._tokens.get(sent[0], 0) - sent[1]

    def on_node_removed(self, node: Node) -> None:
        super().on_node_removed(node)
        self._tokens.pop(node.id, None)

    # -- what the simulation asks of every policy ----------------------------------

    def tick(self) -> None:
        self.adjust_workers(self.predict_load())
        return None

    def can_dispatch(self, model: str) -> bool:
        return any(n.healthy and n.serves(model) for n in self.nodes.values())

    def nodes_to_remove(self, count: int) -> list[Node]:
        active = [n for n in self.nodes.values() if n.state in (NodeState.STARTING, NodeState.READY)]
        active.sort(key=lambda n: (n.state is NodeState.READY, n.queued + n.running, n.id))
        return active[: max(0, count)]

    # -- loads ---------------------------------------------------------------------

    @staticmethod
    def requests(node: Node) -> int:
        return node.queued + node.running

    def outstanding_tokens(self, node: Node) -> int:
        return self._tokens.get(node.id, 0)


class RoundRobin(RoutingPolicy):
    name = "round-robin"

    def __init__(self, workers: int = 1, **kwargs) -> None:
        super().__init__(workers, **kwargs)
        self._last: tuple[float, str] = (-math.inf, "")  # (created_at, id) of the last node chosen

    def choose(self, task: Task, nodes: list[Node]) -> Node:
        # Turns follow the order nodes joined in (ids break ties), so a node that joins or
        # leaves does not reshuffle everyone's turn.
        ordered = sorted(nodes, key=lambda n: (n.created_at, n.id))
        node = next((n for n in ordered if (n.created_at, n.id) > self._last), ordered[0])
        self._last = (node.created_at, node.id)
        return node


class RandomChoice(RoutingPolicy):
    name = "random"

    def choose(self, task: Task, nodes: list[Node]) -> Node:
        return self._rng.choice(nodes)


class LeastRequests(RoutingPolicy):
    name = "least-requests"

    def choose(self, task: Task, nodes: list[Node]) -> Node:
        return min(nodes, key=lambda n: (self.requests(n), self._rng.random()))


class LeastTokens(RoutingPolicy):
    name = "least-tokens"

    def choose(self, task: Task, nodes: list[Node]) -> Node:
        return min(nodes, key=lambda n: (self.outstanding_tokens(n), self._rng.random()))


class PowerOfTwo(RoutingPolicy):
    name = "p2c"

    def choose(self, task: Task, nodes: list[Node]) -> Node:
        pair = self._rng.sample(nodes, 2) if len(nodes) > 1 else nodes
        return min(pair, key=self.outstanding_tokens)


class PrefixHash(RoutingPolicy):
    """Consistent hashing of the prompt prefix with bounded load (see the module docstring)."""

    name = "prefix-hash"

    def __init__(
        self,
        workers: int = 1,
        *,
        prefix_blocks: int | None = None,
        prefix_tokens: int = 1024,
        block_tokens: int = 512,
        load_bound: float = 1.25,
        replicas: int = 64,
        **kwargs,
    ) -> None:
        super().__init__(workers, **kwargs)
        if prefix_blocks is None:
            # The same prefix whatever the block size: two of Mooncake's 512-token blocks in the
            # simulation, sixteen of the gateway's 64-token blocks (runtime/prefix.py) end to end.
            prefix_blocks = max(1, math.ceil(prefix_tokens / max(1, block_tokens)))
        if prefix_blocks < 1 or load_bound < 1.0 or replicas < 1:
            raise ValueError("prefix_blocks >= 1, load_bound >= 1 and replicas >= 1 are required")
        self.prefix_blocks = prefix_blocks
        self.load_bound = load_bound
        self.replicas = replicas
        self._ring_of: tuple[str, ...] = ()
        self._ring_nodes: tuple[Node, ...] = ()  # the node objects the ring was last checked with
        self._points: list[int] = []
        self._owners: list[Node] = []

    def key(self, task: Task) -> int:
        """The prefix's first `prefix_blocks` blocks (block hashes are chained, so the last of
        them names them all); without prefix information, the request itself (no affinity)."""
        if task.prefix_hashes:
            return mix64(task.prefix_hashes[min(len(task.prefix_hashes), self.prefix_blocks) - 1])
        return _stable_hash(task.id)

    def _ring(self, nodes: list[Node]) -> None:
        # The same node objects as last time (every decision but the first after a change): the
        # ring stands as it is, without the pass over its replicas x nodes points.
        if len(nodes) == len(self._ring_nodes) and all(map(operator.is_, nodes, self._ring_nodes)):
            return
        self._ring_nodes = tuple(nodes)
        ids = tuple(n.id for n in nodes)
        if ids == self._ring_of:
            by_id = {n.id: n for n in nodes}
            self._owners = [by_id[o.id] for o in self._owners]
            return
        points = sorted((_stable_hash(f"{n.id}#{i}"), n.id, n) for n in nodes for i in range(self.replicas))
        self._ring_of = ids
        self._points = [p for p, _, _ in points]
        self._owners = [n for _, _, n in points]

    def choose(self, task: Task, nodes: list[Node]) -> Node:
        self._ring(nodes)
        total = sum(self.requests(n) for n in nodes)
        limit = math.ceil(self.load_bound * (total + 1) / len(nodes))
        start = bisect.bisect(self._points, self.key(task))
        seen: set[str] = set()
        count = len(self._points)
        for step in range(count):
            node = self._owners[(start + step) % count]
            if node.id in seen:
                continue
            if self.requests(node) + 1 <= limit:
                return node
            seen.add(node.id)
            if len(seen) == len(nodes):
                break
        return min(nodes, key=self.requests)


BASELINES: dict[str, type[RoutingPolicy]] = {
    cls.name: cls for cls in (RoundRobin, RandomChoice, LeastRequests, LeastTokens, PowerOfTwo, PrefixHash)
}
