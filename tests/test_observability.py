"""The operations kit in examples/observability/ matches what the gateway exposes.

promtool checks the files; every metric the rules and the dashboard name is exposed by a
real `autoglm serve`; a real Prometheus scrapes that server, loads the rules and answers
the dashboard's queries with data.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from autoglm_cli.testing.servers import ServeProcess, free_port, wait_http

from .conftest import REPO_ROOT

KIT = REPO_ROOT / "examples" / "observability"
RULE_FILES = sorted((KIT / "rules").glob("*.yml"))
DASHBOARD = KIT / "grafana" / "autoglm-dashboard.json"
# A metric name in PromQL: `autoglm_...` or `http_...` (recording rules contain ':' and
# `up` is Prometheus's own).
METRIC = re.compile(r"\b((?:autoglm|http)_[a-zA-Z0-9_]+)\b")
# Panels whose series exist only after events this test does not cause.
NEEDS_EVENTS = {"Fallbacks to the backup model", "Scale events"}


def rule_expressions() -> list[str]:
    exprs = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            exprs += [rule["expr"] for rule in group["rules"]]
    return exprs


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard, with `$instance` as all."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [
        (panel["title"], target["expr"].replace("$instance", ".*"))
        for panel in panels
        for target in panel["targets"]
    ]


def exposed_samples(text: str) -> set[str]:
    """Every sample name /metrics can carry, from its `# TYPE` lines (series with no
    labelled child yet still count: the family is declared)."""
    names = set()
    for line in text.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, family, kind = line.split()
        if kind == "histogram":
            names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
        elif kind == "counter":
            base = family.removesuffix("_total")
            names |= {f"{base}_total", f"{base}_created"}
        else:
            names.add(family)
    return names


def sim_config(tmp_path: Path) -> Path:
    config = {
        "model_pool": {"default": "sim-glm", "backup": None},
        "models": {
            "sim-glm": {"backend": "simulated", "options": {"a": 0.01, "c": 0.002, "output_tokens": 8}}
        },
        "workers": {"engine": "inline", "count": 1},
        "gateway": {"auth": False},
        "weights": {"cache_dir": str(tmp_path / "hub")},
        "log_level": "WARN",
    }
    (tmp_path / "hub").mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def drive_traffic(url: str) -> None:
    """Streamed and plain answers (TTFT, TPOT, queue wait) and one error by code."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for stream in (False, True, False, True):
            body = {"model": "sim-glm", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
            assert client.post("/v1/chat/completions", json=body).status_code == 200
        unknown = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/chat/completions", json=unknown).status_code == 404


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("observed")
    with ServeProcess(sim_config(tmp)) as server:
        yield server


# -- the files themselves ---------------------------------------------------------


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules_and_the_scrape_config():
    checked = subprocess.run(
        ["promtool", "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = subprocess.run(
        ["promtool", "check", "config", str(KIT / "prometheus.yml")], capture_output=True, text=True
    )
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_alert_says_what_is_wrong_and_has_a_severity():
    alerts = [
        rule
        for group in yaml.safe_load((KIT / "rules" / "autoglm-alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    ]
    assert {a["alert"] for a in alerts} >= {
        "AutoglmNoReadyNode",
        "AutoglmErrorRatioHigh",
        "AutoglmTimeToFirstTokenSlow",
        "AutoglmTimePerOutputTokenSlow",
        "AutoglmQueueWaitGrowing",
        "AutoglmFallbackRateHigh",
        "AutoglmScaleFlapping",
        "AutoglmWeightsCacheDiskLow",
    }
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]


# -- against a real server --------------------------------------------------------


def test_every_metric_the_rules_and_dashboard_use_is_exposed(served):
    drive_traffic(served.url)
    exposed = exposed_samples(httpx.get(f"{served.url}/metrics").text)
    used = {name for expr in rule_expressions() for name in METRIC.findall(expr)}
    used |= {name for _, expr in dashboard_targets() for name in METRIC.findall(expr)}
    assert used, "no metric names found in the kit"
    missing = sorted(used - exposed)
    assert not missing, f"used by examples/observability but not exposed by /metrics: {missing}"


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="prometheus is not installed (Debian: prometheus)"
)
def test_a_real_prometheus_scrapes_serve_and_answers_the_dashboard(served, tmp_path):
    (tmp_path / "rules").mkdir()
    for path in RULE_FILES:
        shutil.copy(path, tmp_path / "rules" / path.name)
    config = yaml.safe_load((KIT / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    gateway = next(job for job in config["scrape_configs"] if job["job_name"] == "autoglm-gateway")
    gateway["static_configs"] = [{"targets": [served.url.removeprefix("http://")]}]
    config["scrape_configs"] = [gateway]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v1"
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=60, alive=lambda: proc.poll() is None)

        def query(expr: str) -> list:
            answer = httpx.get(f"{api}/query", params={"query": expr}, timeout=10).json()
            assert answer["status"] == "success", (expr, answer)
            return answer["data"]["result"]

        def poll(expr: str, timeout: float = 60) -> list:
            deadline = time.monotonic() + timeout
            while not (result := query(expr)) and time.monotonic() < deadline:
                time.sleep(0.5)
            return result

        # rate() sees an increase only between two samples of a series: traffic, a scrape
        # that records the series, more traffic, and a later scrape.
        assert poll('up{job="autoglm-gateway"} == 1'), "Prometheus never scraped the gateway"
        drive_traffic(served.url)
        assert poll('http_requests_total{route="/v1/chat/completions"}')
        drive_traffic(served.url)
        assert poll('increase(http_requests_total{route="/v1/chat/completions"}[1m]) > 0')

        empty = [
            title for title, expr in dashboard_targets() if title not in NEEDS_EVENTS and not poll(expr, 15)
        ]
        assert not empty, f"dashboard panels without data: {empty}"
        assert poll("autoglm:time_to_first_token_seconds:p99_5m"), "recording rules produced nothing"

        groups = httpx.get(f"{api}/rules", timeout=10).json()["data"]["groups"]
        unhealthy = [r["name"] for g in groups for r in g["rules"] if r.get("health") != "ok"]
        assert {g["name"] for g in groups} == {"autoglm-recording", "autoglm-alerts"}
        assert not unhealthy, unhealthy
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
