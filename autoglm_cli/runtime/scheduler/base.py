"""The scheduler interface (DESIGN.md, "The scheduler core") and the types it speaks.

A scheduler is pure policy: it sees tasks and node statistics and decides where
a task goes (`route_task`), what load comes next (`predict_load`) and how many
workers that needs (`adjust_workers`). It never does I/O itself; the runtime
feeds it observations and applies its decisions (e.g. `cluster.scale(n)`).
Time comes from an injectable clock so policies are unit-testable.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

Clock = Callable[[], float]
MONOTONIC: Clock = time.monotonic


class Priority(enum.IntEnum):
    """Lower value is served first."""

    HIGH = 0
    NORMAL = 1
    LOW = 2


class NodeKind(str, enum.Enum):
    ACTOR = "actor"  # a model actor on a Dask worker
    UPSTREAM = "upstream"  # an OpenAI-compatible endpoint (vLLM, SGLang, hosted API)
    SIMULATED = "simulated"


class NodeState(str, enum.Enum):
    STARTING = "starting"  # placed, model loading
    READY = "ready"
    DRAINING = "draining"  # finishing its work before removal
    FAILED = "failed"  # model failed to load; see `Node.error`
    DEAD = "dead"  # the process is gone


@dataclass
class Task:
    """One inference request as the scheduler sees it."""

    id: str
    model: str
    prompt_tokens: int = 0
    max_tokens: int = 16
    priority: Priority = Priority.NORMAL
    arrived_at: float = 0.0
    attempts: int = 0


@dataclass
class Node:
    """Something that can run tasks for a set of models, with live statistics."""

    id: str
    models: frozenset[str]
    kind: NodeKind = NodeKind.ACTOR
    state: NodeState = NodeState.STARTING
    address: str = ""  # Dask worker address or upstream base URL
    queued: int = 0
    running: int = 0
    service_time_ewma: float = 0.0  # seconds per task
    rtt_ewma: float = 0.0  # seconds of network round trip
    error: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.state is NodeState.READY

    def serves(self, model: str) -> bool:
        return model in self.models


class Scheduler(Protocol):
    """The interface every scheduling policy implements."""

    def predict_load(self) -> float:
        """Expected load (tasks per second) in the next control interval."""
        ...

    def adjust_workers(self, target_load: float) -> None:
        """Decide the number of workers for `target_load`; the runtime applies it."""
        ...

    def route_task(self, task: Task) -> Node:
        """The node that should run `task`; raises `NoNodeAvailable` when none can."""
        ...


class NoNodeAvailable(RuntimeError):
    """No healthy node serves the task's model (the caller may fall back to the backup model)."""

    def __init__(self, model: str) -> None:
        super().__init__(f"no healthy node serves model {model!r}")
        self.model = model
