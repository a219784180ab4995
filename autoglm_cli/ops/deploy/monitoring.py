"""`deploy --with-monitoring DIR` (or `deploy.monitoring_dir`): the monitoring kit written
beside a deployment, its scrape target set to the deployment's gateway.

What is written: `prometheus.yml`, `rules/autoglm-recording.yml`, `rules/autoglm-alerts.yml`
and `grafana/autoglm-dashboard.json` (from `autoglm_cli/observability`). `redeploy` runs the
same deploy with the same config, so it writes them again: a lost or edited-away kit comes
back with the service (the original design's monitoring-recovery step). Each file is
written atomically; files of the kit are replaced, nothing else in DIR is touched.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from ...atomic import atomic_write
from ...errors import EnvironmentFailure

KIT_FILES = (
    "prometheus.yml",
    "rules/autoglm-recording.yml",
    "rules/autoglm-alerts.yml",
    "grafana/autoglm-dashboard.json",
)
GATEWAY_JOB = "autoglm-gateway"


def scrape_target(url: str) -> str:
    """`HOST:PORT` Prometheus scrapes for a gateway at `url`."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # listening everywhere: scrape it locally
        host = "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port or 80}"


def kit_text(name: str) -> str:
    return resources.files("autoglm_cli.observability").joinpath(name).read_text(encoding="utf-8")


def render_scrape_config(target: str) -> str:
    """The shipped scrape config with the gateway job pointed at `target`."""
    import yaml

    config = yaml.safe_load(kit_text("prometheus.yml"))
    for job in config["scrape_configs"]:
        if job["job_name"] == GATEWAY_JOB:
            job["static_configs"] = [{"targets": [target]}]
    header = (
        f"# Written by `autoglm deploy --with-monitoring` for the gateway at {target};\n"
        "# rewritten by every deploy and redeploy with this setting (edit a copy).\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)


def monitoring_plan(directory: str | Path) -> list[str]:
    return [f"write the monitoring kit to {directory}: " + ", ".join(KIT_FILES)]


def write_monitoring(directory: str | Path, gateway_url: str) -> tuple[str, ...]:
    """Write the kit into `directory` for the gateway at `gateway_url`; the paths written."""
    root = Path(directory).expanduser()
    written = []
    try:
        for name in KIT_FILES:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            text = (
                render_scrape_config(scrape_target(gateway_url))
                if name == "prometheus.yml"
                else kit_text(name)
            )
            atomic_write(path, text)
            written.append(str(path))
    except OSError as exc:
        raise EnvironmentFailure(
            f"cannot write the monitoring kit to {root}: {exc.strerror or exc}",
            remedy="Point --with-monitoring (deploy.monitoring_dir) at a writable directory.",
        ) from None
    return tuple(written)
