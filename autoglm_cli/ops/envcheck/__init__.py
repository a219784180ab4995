"""`autoglm env-check`: is this machine ready to run the deployment?

One module per category of checks (binaries, packages, accelerators, resources,
docker, network, ports), each turning the config into `CheckSpec`s; `runner`
runs them all concurrently and returns an `EnvReport` (frozen dataclasses; never
prints, never exits).
"""

from __future__ import annotations

from .model import Check, CheckPlan, CheckSpec, EnvReport, PlannedCheck, Severity, Status, Summary
from .runner import CATEGORIES, list_checks, plan_checks, run_checks, select_categories

__all__ = [
    "CATEGORIES",
    "Check",
    "CheckPlan",
    "CheckSpec",
    "EnvReport",
    "PlannedCheck",
    "Severity",
    "Status",
    "Summary",
    "list_checks",
    "plan_checks",
    "run_checks",
    "select_categories",
]
