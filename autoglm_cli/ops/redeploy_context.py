"""What the redeploy engine and its steps share: a step, its outcome, the run's context.

Its own module so that `redeploy.py` (the engine) imports `redeploy_steps.py` (the
step table) and neither imports the other back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..progress import Progress
from ..words import Word

if TYPE_CHECKING:
    from ..config import Config
    from .deploy.state import StateDir


class StepStatus(Word):
    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"
    PLANNED = "planned"  # --dry-run
    PENDING = "pending"  # not run: an earlier step failed
    EARLIER = "earlier"  # ok in a previous run (resumed after it)
    NOT_SELECTED = "not selected"  # --only / --from-step left it out


@dataclass
class StepOutcome:
    """What a step adapter returns; the engine adds timing and journaling."""

    status: StepStatus  # ok | skipped | failed (a word is accepted and checked)
    detail: str
    exit_code: int = 0
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = StepStatus(self.status)


@dataclass
class PipelineContext:
    """Shared by the steps of one run."""

    config: Config
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
