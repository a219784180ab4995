"""`autoglm redeploy`: clone -> env-check -> migrate-cache -> fetch-weights -> verify -> deploy -> health.

One config drives every step. Each step's result is written to the state
directory's journal (`redeploy.json`) as soon as it finishes, so a rerun after a
failure resumes at the failed step (unless the config changed, which starts
over); `from_step` and `only` choose explicitly. A dry run asks every step for
its plan and changes nothing. Deploy failures roll back inside the deploy step
(exit 4); the pipeline stops at the first failed step.

The steps themselves live in `redeploy_steps.py`: thin adapters over the other
ops modules, so this file is only the engine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import AutoglmError, ExitCode, UsageError
from ..progress import NULL_PROGRESS, Progress
from .deploy.repair import load_current
from .deploy.snapshot import config_hash
from .deploy.state import DeploymentState, StateDir, atomic_write, resolve_state_dir
from .redeploy_context import PipelineContext, Step, StepOutcome, StepStatus
from .redeploy_steps import STEP_TABLE, STEPS

JOURNAL_SCHEMA = 1


@dataclass(frozen=True)
class StepResult:
    name: str
    status: StepStatus  # a word is accepted and checked
    detail: str
    duration_s: float = 0.0
    exit_code: int = 0
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", StepStatus(self.status))


@dataclass(frozen=True)
class RedeployReport:
    steps: tuple[StepResult, ...]
    state_dir: str
    config_hash: str
    dry_run: bool = False
    resumed_from: str | None = None  # the step a rerun resumed at
    deployment: DeploymentState | None = None
    rolled_back: bool = False
    duration_s: float = 0.0

    @property
    def failed(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    @property
    def exit_code(self) -> ExitCode:
        failed = self.failed
        return ExitCode(failed.exit_code or ExitCode.CHECK_FAILED) if failed else ExitCode.OK


# --- the journal ---------------------------------------------------------------------


def load_journal(state: StateDir) -> dict:
    try:
        data = json.loads(state.journal_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a damaged journal only costs a fresh start
    return data if isinstance(data, dict) and data.get("schema") == JOURNAL_SCHEMA else {}


def _save_journal(state: StateDir, journal: dict) -> None:
    state.ensure()
    atomic_write(state.journal_file, json.dumps(journal, indent=2, default=str) + "\n")


def _resume_point(journal: dict, digest: str) -> str | None:
    """The first step a previous run of the same config did not finish, if it stopped early."""
    steps = journal.get("steps") or {}
    if journal.get("config_hash") != digest or not steps:
        return None
    for name in STEPS:
        if steps.get(name, {}).get("status") not in ("ok", "skipped"):
            return name
    return None  # the last run completed: start over


# --- the engine ----------------------------------------------------------------------


def _validate(names: Sequence[str], option: str) -> None:
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise UsageError(f"unknown step {unknown[0]!r} for {option}", remedy=f"Steps: {', '.join(STEPS)}.")


def redeploy(
    config: Config,
    *,
    from_step: str | None = None,
    only: Sequence[str] = (),
    dry_run: bool = False,
    target: str | None = None,
    state_dir: str | Path | None = None,
    force: bool = False,
    progress: Progress = NULL_PROGRESS,
) -> RedeployReport:
    """Run (or plan) the pipeline; see the module docstring."""
    if from_step:
        _validate([from_step], "--from-step")
    _validate(only, "--only")
    if from_step and only:
        raise UsageError("give --from-step or --only, not both")
    state = StateDir(resolve_state_dir(config, state_dir))
    digest = config_hash(config)
    journal = load_journal(state)
    resumed = None
    if only:
        selected = [s for s in STEPS if s in only]
    else:
        start = from_step
        if start is None and not dry_run:
            start = resumed = _resume_point(journal, digest)
        selected = list(STEPS[STEPS.index(start) :]) if start else list(STEPS)

    ctx = PipelineContext(config=config, state=state, progress=progress, target=target, force=force)
    started = time.perf_counter()
    results: list[StepResult] = []
    earlier = journal.get("steps", {}) if journal.get("config_hash") == digest else {}

    if not dry_run:
        if not (only or resumed):
            journal = {
                "schema": JOURNAL_SCHEMA,
                "config_hash": digest,
                "started_at": time.time(),
                "steps": {},
            }
        journal.setdefault("schema", JOURNAL_SCHEMA)
        journal["config_hash"] = digest
        journal.setdefault("steps", {})

    failed = False
    for step in STEP_TABLE:
        name = step.name
        if name not in selected:
            previous = earlier.get(name)
            if previous and resumed and previous.get("status") in ("ok", "skipped"):
                results.append(
                    StepResult(name, "earlier", previous.get("detail", ""), previous.get("duration_s", 0.0))
                )
            else:
                results.append(StepResult(name, "not selected", ""))
            continue
        if failed:
            results.append(StepResult(name, "pending", "not run: an earlier step failed"))
            continue
        if dry_run:
            t0 = time.perf_counter()
            try:
                results.append(StepResult(name, "planned", step.plan(ctx), time.perf_counter() - t0))
            except AutoglmError as err:
                # A plan that cannot be made is a finding; plan the other steps all the same.
                detail = f"cannot plan: {err.message}" + (f" ({err.remedy})" if err.remedy else "")
                elapsed = time.perf_counter() - t0
                results.append(StepResult(name, "failed", detail, elapsed, int(err.exit_code)))
            continue
        task = progress.task(f"redeploy: {name}", total=None, transient=True)
        result = _run_step(name, step, ctx)
        task.finish()
        results.append(result)
        journal["steps"][name] = {**asdict(result), "finished_at": time.time()}
        _save_journal(state, journal)
        failed = result.status == "failed"

    deploy_out = ctx.outputs.get("deploy")
    return RedeployReport(
        steps=tuple(results),
        state_dir=str(state.root),
        config_hash=digest,
        dry_run=dry_run,
        resumed_from=resumed,
        deployment=load_current(state) if not dry_run else None,
        rolled_back=bool(deploy_out is not None and getattr(deploy_out, "action", "") == "rolled_back"),
        duration_s=time.perf_counter() - started,
    )


def _run_step(name: str, step: Step, ctx: PipelineContext) -> StepResult:
    t0 = time.perf_counter()
    try:
        outcome: StepOutcome = step.run(ctx)
    except AutoglmError as err:
        # A step's own error is its result: recorded, and the pipeline stops here.
        outcome = StepOutcome(
            "failed", err.message + (f" ({err.remedy})" if err.remedy else ""), int(err.exit_code)
        )
    return StepResult(
        name, outcome.status, outcome.detail, time.perf_counter() - t0, outcome.exit_code, outcome.data
    )
