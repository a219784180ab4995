"""The redeploy pipeline's steps: thin adapters over the other ops modules.

Each step has `plan(ctx) -> str` (read-only, for --dry-run) and
`run(ctx) -> StepOutcome`. A step that does not apply to the config (no repo to
clone, no cache migration, weights in a local directory) is "skipped" and says why.
"""

from __future__ import annotations

from ..units import size_text
from .deploy.repair import load_current
from .redeploy_context import PipelineContext, Step, StepOutcome

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

    current = load_current(ctx.state)
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


# --- migrate-cache: caches keyed by old names ----------------------------------------------------


def _migration(ctx: PipelineContext):
    from .cache.locations import Locations
    from .cache.mapping import MappingTable

    table = MappingTable.from_config(ctx.config.cache_migrations)
    locations = Locations.resolve(hub_cache=ctx.config.weights.cache_dir)
    return table, locations, ctx.state.ensure().root / "migrate-cache.jsonl"


def _migration_detail(report) -> str:
    parts = []
    for row in report.rows:
        moved = [e for e in row.entries if e.status != "unchanged"]
        what = ", ".join(f"{e.old} -> {e.new} ({e.method})" for e in moved[:3]) or "nothing to move"
        parts.append(
            f"{row.old} -> {row.new}: {what}" + (f" [{row.status}]" if report.mode == "apply" else "")
        )
    return "; ".join(parts) + "".join(f"; {n}" for n in report.notes)


def _plan_migrate(ctx: PipelineContext) -> str:
    if not ctx.config.cache_migrations:
        return "skip: no cache_migrations configured"
    from .cache import migrate

    table, locations, journal = _migration(ctx)
    return _migration_detail(migrate(table, locations, journal_path=journal, apply=False))


def _run_migrate(ctx: PipelineContext) -> StepOutcome:
    if not ctx.config.cache_migrations:
        return StepOutcome("skipped", "no cache_migrations configured")
    from .cache import migrate

    table, locations, journal = _migration(ctx)
    report = migrate(table, locations, journal_path=journal, apply=True, progress=ctx.progress)
    ctx.outputs["migrate-cache"] = report
    status = "ok" if report.exit_code == 0 else "failed"
    return StepOutcome(status, _migration_detail(report), int(report.exit_code), {"journal": str(journal)})


# --- fetch-weights and verify: the model's bytes --------------------------------------------------


def _hub_sources(ctx: PipelineContext) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(source, revision) of the default and backup models that have weights to fetch, and notes."""
    from pathlib import Path

    from ..config import with_overrides
    from .weights.fetch import default_sources

    config = ctx.config
    notes: list[str] = []
    wanted = []
    for name in (config.model_pool.default, config.model_pool.backup):
        spec = config.models.get(name) if name else None
        if spec is not None and spec.backend != "transformers":
            notes.append(f"{name}: {spec.backend} backend, no weights")
        elif spec is not None and spec.source and Path(spec.source).expanduser().is_dir():
            notes.append(f"{name}: local folder {spec.source}")
        elif name:
            wanted.append(name)
    if not wanted:
        return [], notes
    backup = wanted[1] if len(wanted) > 1 else None
    chosen = with_overrides(
        config, {"model_pool.default": wanted[0], "model_pool.backup": backup}, none_means_unset=False
    )
    return default_sources(chosen), notes


_size = size_text


def _plan_fetch(ctx: PipelineContext) -> str:
    sources, notes = _hub_sources(ctx)
    if not sources:
        return "skip: " + ("; ".join(notes) or "no model weights to fetch")
    return "; ".join(
        f"{s}@{r or 'main'} into the HF cache (files already there with the right hash are kept)"
        for s, r in sources
    )


def _run_fetch(ctx: PipelineContext) -> StepOutcome:
    sources, notes = _hub_sources(ctx)
    if not sources:
        return StepOutcome("skipped", "; ".join(notes) or "no model weights to fetch")
    from .weights.fetch import FetchOptions, fetch_weights

    report = fetch_weights(sources, config=ctx.config, options=FetchOptions(), progress=ctx.progress)
    ctx.outputs["fetch-weights"] = report
    parts = [
        f"{r.repo_id or r.source}@{(r.commit or '')[:8]}: {len(r.files)} files, "
        f"{_size(r.bytes_fetched)} fetched, {_size(r.bytes_reused)} already there"
        for r in report.sources
    ]
    return StepOutcome("ok", "; ".join(parts + notes), 0, {"bytes_fetched": report.bytes_fetched})


def _plan_verify(ctx: PipelineContext) -> str:
    sources, notes = _hub_sources(ctx)
    hub = [(s, r) for s, r in sources if "://" not in s]
    if not hub:
        return "skip: " + ("; ".join(notes) or "no hub weights to verify")
    return "; ".join(
        f"every file of {s}@{r or 'main'} against the hub's sha256 and git blob ids" for s, r in hub
    )


def _run_verify(ctx: PipelineContext) -> StepOutcome:
    sources, notes = _hub_sources(ctx)
    hub = [(s, r) for s, r in sources if "://" not in s]  # URL sources were hashed while fetched
    if not hub:
        return StepOutcome("skipped", "; ".join(notes) or "no hub weights to verify")
    from .weights.hub_verify import verify_hub

    parts, failed, code = [], [], 0
    for source, revision in hub:
        report = verify_hub(source, config=ctx.config, revision=revision or "main", progress=ctx.progress)
        name = report.source.removeprefix("hf://")
        repo, _, commit = name.partition("@")
        parts.append(f"{repo}@{commit[:8]}: {report.summary}")
        failed += [f"{f.name}: {f.status}" for f in report.files if f.status not in ("ok", "extra")]
        code = max(code, int(report.exit_code))
    detail = "; ".join(parts) + (f"; {'; '.join(failed[:5])}" if failed else "")
    return StepOutcome("failed" if code else "ok", detail, code)


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
    from .deploy.health_target import resolve_target
    from .health import check_health

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


# The one step table: the order, the names (`--from-step`, `--only`, the help) derive from it.
STEP_TABLE: tuple[Step, ...] = (
    Step("clone", _plan_clone, _run_clone),
    Step("env-check", _plan_env_check, _run_env_check),
    Step("migrate-cache", _plan_migrate, _run_migrate),
    Step("fetch-weights", _plan_fetch, _run_fetch),
    Step("verify", _plan_verify, _run_verify),
    Step("deploy", _plan_deploy, _run_deploy),
    Step("health", _plan_health, _run_health),
)
STEPS: tuple[str, ...] = tuple(step.name for step in STEP_TABLE)
