"""What the redeploy engine and its steps share: a step, its outcome, the run's context.

Its own module so that `redeploy.py` (the engine) imports `redeploy_steps.py` (the
step table) and neither imports the other back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..progress import Progress

if TYPE_CHECKING:
    from .deploy.state import StateDir


@dataclass
class StepOutcome:
    """What a step adapter returns; the engine adds timing and journaling."""

    status: str  # ok | skipped | failed
    detail: str
    exit_code: int = 0
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineContext:
    """Shared by the steps of one run."""

    config: Any
    state: StateDir
    progress: Progress
    target: str | None = None
    force: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)  # step name -> its report, for later steps


@dataclass(frozen=True)
class Step:
    name: str
    plan: Callable[[PipelineContext], str]
    run: Callable[[PipelineContext], StepOutcome]
