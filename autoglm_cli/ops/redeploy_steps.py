"""The redeploy pipeline's steps: thin adapters over the other ops modules.

Each step has `plan(ctx) -> str` (read-only, for --dry-run) and
`run(ctx) -> StepOutcome`. A step that does not apply to the config (no repo to
clone, no cache migration, weights in a local directory) is "skipped" and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .redeploy import PipelineContext, StepOutcome


@dataclass(frozen=True)
class Step:
    plan: Callable[[PipelineContext], str]
    run: Callable[[PipelineContext], StepOutcome]


# --- clone: the service's code ---------------------------------------------------------------


def _clone_request(ctx: PipelineContext, *, dry_run: bool):
    from pathlib import Path

    from .repo import CloneRequest

    deploy = ctx.config.deploy
    directory = Path(deploy.checkout).expanduser() if deploy.checkout else None
    return CloneRequest(url=deploy.repo, directory=directory, branch=deploy.branch, dry_run=dry_run)


def _clone_rows(report) -> str:
    rows = [
        f"{c.name}: {c.old} -> {c.new} ({c.status})" if c.old != c.new else f"{c.name}: {c.status}"
        for c in report.changes
    ]
    where = f"{report.directory} at {(report.commit or '')[:10]}" + (
        f" on {report.branch}" if report.branch else ""
    )
    return f"{report.action} {where}; " + "; ".join(rows)


def _plan_clone(ctx: PipelineContext) -> str:
    if not ctx.config.deploy.repo:
        return "skip: no deploy.repo configured"
    from .repo import clone

    report = clone(_clone_request(ctx, dry_run=True), moves=ctx.config.moves)
    return _clone_rows(report)


def _run_clone(ctx: PipelineContext) -> StepOutcome:
    if not ctx.config.deploy.repo:
        return StepOutcome("skipped", "no deploy.repo configured: the service runs from this installation")
    from .repo import clone

    report = clone(_clone_request(ctx, dry_run=False), moves=ctx.config.moves, progress=ctx.progress)
    ctx.outputs["clone"] = report
    status = "ok" if report.exit_code == 0 else "failed"
    return StepOutcome(status, _clone_rows(report), int(report.exit_code), {"commit": report.commit})


# --- env-check: is this machine ready? ----------------------------------------------------------


def _plan_env_check(ctx: PipelineContext) -> str:
    from .envcheck import list_checks

    plan = list_checks(ctx.config)
    return f"{len(plan.checks)} checks: {', '.join(plan.categories)}"


def _held_by_current_deployment(ctx: PipelineContext, port: int) -> bool:
    """Is `port` held by the deployment this redeploy replaces (so deploy frees it)?"""
    from .deploy.targets import get_target

    current = ctx.state.load_current()
    if current is None or current.status == "stopped" or current.port != port:
        return False
    return get_target(current.target).owns_port(current, port)


def _run_env_check(ctx: PipelineContext) -> StepOutcome:
    from .envcheck import Severity, Status, run_checks

    report = run_checks(ctx.config, progress=ctx.progress)
    ctx.outputs["env-check"] = report
    failed, excused = [], []
    for check in report.checks:
        if check.status is not Status.FAIL or check.severity is not Severity.REQUIRED:
            continue
        if (
            check.category == "ports"
            and check.name.isdigit()
            and _held_by_current_deployment(ctx, int(check.name))
        ):
            excused.append(f"port {check.name} is held by the running deployment, which deploy replaces")
        else:
            failed.append(
                f"{check.category}/{check.name}: {check.value}"
                + (f" ({check.remedy})" if check.remedy else "")
            )
    summary = report.summary
    detail = f"{summary.ok} ok, {summary.warn} warn, {summary.fail - len(excused)} fail"
    warnings = [f"{c.category}/{c.name}" for c in report.checks if c.status is Status.WARN]
    if warnings:
        detail += f" (warn: {', '.join(warnings[:6])}{', ...' if len(warnings) > 6 else ''})"
    if excused:
        detail += "; " + "; ".join(excused)
    if failed:
        return StepOutcome("failed", detail + "; failed: " + "; ".join(failed), 1, {"failed": failed})
    return StepOutcome("ok", detail, 0, {"warn": warnings})


# --- deploy and health -------------------------------------------------------------------


def _plan_deploy(ctx: PipelineContext) -> str:
    from .deploy import deploy

    report = deploy(ctx.config, target=ctx.target, state_dir=ctx.state.root, dry_run=True)
    return "; ".join(report.plan)


def _run_deploy(ctx: PipelineContext) -> StepOutcome:
    from .deploy import deploy

    report = deploy(
        ctx.config,
        target=ctx.target,
        state_dir=ctx.state.root,
        force=ctx.force,
        install=True,
        progress=ctx.progress,
    )
    ctx.outputs["deploy"] = report
    status = "ok" if report.exit_code == 0 else "failed"
    data = {"action": report.action, "url": report.deployment.url if report.deployment else None}
    if report.health is not None and status == "failed":
        data["health"] = [f"{c.name}: {c.status.value} {c.detail}" for c in report.health.checks]
    if report.logs and status == "failed":
        data["logs"] = report.logs
    return StepOutcome(status, report.message, int(report.exit_code), data)


def _plan_health(ctx: PipelineContext) -> str:
    return "probe liveness, readiness, every node, a tiny inference, metrics, GPU, disk and the state file"


def _run_health(ctx: PipelineContext) -> StepOutcome:
    from .health import check_health, resolve_target

    report = check_health(resolve_target(ctx.config, state_dir=str(ctx.state.root)))
    ctx.outputs["health"] = report
    failed = [f"{c.name}: {c.detail}" for c in report.failed_required]
    detail = report.summary() + (f" ({'; '.join(failed)})" if failed else "")
    return StepOutcome(
        "ok" if report.ok else "failed",
        detail,
        int(report.exit_code),
        {"checks": {c.name: c.status.value for c in report.checks}},
    )


# --- the steps other issues build (adapters filled in as they land) ------------------------


def _not_available(what: str) -> Step:
    def plan(ctx: PipelineContext) -> str:
        return f"{what}: not available in this build"

    def run(ctx: PipelineContext) -> StepOutcome:
        return StepOutcome("skipped", f"{what} is not available in this build")

    return Step(plan, run)


STEP_FUNCTIONS: dict[str, Step] = {
    "clone": Step(_plan_clone, _run_clone),
    "env-check": Step(_plan_env_check, _run_env_check),
    "migrate-cache": _not_available("migrate-cache"),
    "fetch-weights": _not_available("fetch-weights"),
    "verify": _not_available("verify"),
    "deploy": Step(_plan_deploy, _run_deploy),
    "health": Step(_plan_health, _run_health),
}
