"""`health --watch`: a node that left the cluster is shown dead once, then dropped."""

from __future__ import annotations

from autoglm_cli.cli.health import without_departed
from autoglm_cli.ops.health import Check, HealthReport, Status


def _report(*nodes: tuple[str, str]) -> HealthReport:
    checks = [Check("liveness", Status.OK, True, 1.0, "ok")]
    for name, state in nodes:
        status = Status.OK if state == "ready" else Status.FAIL
        checks.append(Check(f"node:{name}", status, False, 0.0, state, {"state": state}))
    return HealthReport("http://x", "url", "m", tuple(checks), 1.0)


def names(report: HealthReport) -> list[str]:
    return [c.name for c in report.checks]


def test_a_dead_node_is_shown_once_then_dropped():
    shown, dead = without_departed(_report(("a", "ready"), ("b", "ready")), set())
    assert names(shown) == ["liveness", "node:a", "node:b"]
    shown, dead = without_departed(_report(("a", "ready"), ("b", "dead")), dead)
    assert names(shown) == ["liveness", "node:a", "node:b"]  # the refresh it died in says so
    shown, dead = without_departed(_report(("a", "ready"), ("b", "dead")), dead)
    assert names(shown) == ["liveness", "node:a"]


def test_a_node_that_comes_back_is_shown_again():
    _, dead = without_departed(_report(("b", "dead")), {"node:b"})
    shown, _ = without_departed(_report(("b", "ready")), dead)
    assert names(shown) == ["liveness", "node:b"]
