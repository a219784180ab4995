"""Plan the checks from the config, run them all at once, collect the report.

Every check runs in its own daemon thread, so the slowest check (usually a
network probe at its timeout) sets the total time, and a check stuck in a call
that cannot be interrupted (a DNS lookup, a hung tool) is reported as such at its
deadline instead of holding up the report or the process exit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from ...config import Config
from ...errors import UsageError
from ...progress import NULL_PROGRESS, Progress
from . import accelerators, binaries, docker_daemon, network, packages, ports, resources
from .model import Check, CheckPlan, CheckSpec, EnvReport, PlannedCheck, summarize

# Display order; also the names `--only` accepts.
PLANNERS: dict[str, Callable[..., list[CheckSpec]]] = {
    binaries.CATEGORY: binaries.plan,
    packages.CATEGORY: packages.plan,
    accelerators.CATEGORY: accelerators.plan,
    resources.CATEGORY: resources.plan,
    docker_daemon.CATEGORY: docker_daemon.plan,
    network.CATEGORY: network.plan,
    ports.CATEGORY: ports.plan,
}
CATEGORIES: tuple[str, ...] = tuple(PLANNERS)


def select_categories(only: Iterable[str] | None) -> tuple[str, ...]:
    wanted = [name.strip().lower() for name in only or ()]
    unknown = [name for name in wanted if name not in PLANNERS]
    if unknown:
        raise UsageError(
            f"unknown check categor{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}",
            remedy=f"Choose from: {', '.join(CATEGORIES)}.",
        )
    return tuple(c for c in CATEGORIES if c in wanted) if wanted else CATEGORIES


def plan_checks(config: Config, only: Iterable[str] | None = None, *, resolver=None) -> list[CheckSpec]:
    """The checks that would run, in display order. Config mistakes raise ConfigError here."""
    specs: list[CheckSpec] = []
    for category in select_categories(only):
        if category == network.CATEGORY:
            specs += network.plan(config, resolver=resolver)
        else:
            specs += PLANNERS[category](config)
    return specs


def list_checks(config: Config, only: Iterable[str] | None = None) -> CheckPlan:
    specs = plan_checks(config, only)
    return CheckPlan(
        categories=select_categories(only),
        checks=tuple(PlannedCheck(s.category, s.name, s.severity, s.description) for s in specs),
    )


def run_checks(
    config: Config,
    only: Iterable[str] | None = None,
    *,
    progress: Progress = NULL_PROGRESS,
    resolver=None,
) -> EnvReport:
    """Run the planned checks concurrently; `resolver` replaces socket.getaddrinfo (tests)."""
    categories = select_categories(only)
    specs = plan_checks(config, categories, resolver=resolver)
    started = time.monotonic()
    results = _run_concurrently(specs, progress)
    checks = tuple(check for per_spec in results for check in per_spec)
    return EnvReport(categories, checks, summarize(checks), round(time.monotonic() - started, 3))


def _run_concurrently(specs: list[CheckSpec], progress: Progress) -> list[list[Check]]:
    task = progress.task("checking the environment", total=len(specs), transient=True)
    results: list[list[Check] | None] = [None] * len(specs)

    def work(i: int, spec: CheckSpec) -> None:
        try:
            outcome = spec.run(spec)
            results[i] = outcome if isinstance(outcome, list) else [outcome]
        except Exception as exc:  # noqa: BLE001 - one broken check must not lose the others' results
            results[i] = [spec.problem(f"the check itself failed: {type(exc).__name__}: {exc}", "")]
        task.advance()

    started = time.monotonic()
    threads = [
        threading.Thread(target=work, args=(i, spec), name=f"env-check {spec.name}", daemon=True)
        for i, spec in enumerate(specs)
    ]
    for thread in threads:
        thread.start()
    for thread, spec in zip(threads, specs, strict=True):
        thread.join(max(0.0, started + spec.timeout - time.monotonic()))
    task.finish()
    return [
        outcome
        if outcome is not None
        else [spec.problem(f"no answer within {spec.timeout:g} s", "Rerun with a longer timeout.")]
        for outcome, spec in zip(results, specs, strict=True)
    ]
