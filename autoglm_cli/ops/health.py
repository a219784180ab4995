"""`autoglm health`: is the deployment serving? Every probe concurrent, each with its latency.

Checks (required ones decide the exit code):

| check      | required | what                                                              |
| ---------- | -------- | ----------------------------------------------------------------- |
| liveness   | yes      | `GET /healthz` answers 200                                         |
| readiness  | yes      | `GET /readyz` answers 200 (a node can serve the default model)     |
| node:<id>  | no       | each node from `/readyz`: worker up, model loaded, queue depth     |
| inference  | yes      | `POST /v1/chat/completions` "Hi", max_tokens 5, with an API key    |
| metrics    | no       | `GET /metrics` parses as Prometheus text with autoglm's families  |
| gpu        | no       | memory in use per GPU (`nvidia-smi`), skipped without GPUs         |
| disk       | no       | free space where the weights cache lives                           |
| state      | yes      | the state file's process / container / unit runs and holds the port|

Targets: a state directory (the default), a URL (`--url`) or a container name.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExitCode
from ..redact import redact
from ..units import size_text
from .status import Status

if TYPE_CHECKING:
    from .deploy.state import DeploymentState  # a type only

INFERENCE_PROMPT = "Hi"
INFERENCE_MAX_TOKENS = 5
DISK_WARN_BYTES = 5 * 2**30
DISK_FAIL_BYTES = 512 * 2**20
GPU_WARN_FRACTION = 0.95
# Families the gateway exports (issue #6); a scrape without them is not autoglm's.
EXPECTED_METRICS = ("http_requests",)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    required: bool
    latency_ms: float
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthReport:
    url: str
    source: str  # "state:<dir>", "url", "container:<name>"
    model: str
    checks: tuple[Check, ...]
    duration_ms: float

    @property
    def ok(self) -> bool:
        return not self.failed_required

    @property
    def failed_required(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.required and c.status is Status.FAIL)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.ok else ExitCode.CHECK_FAILED

    def summary(self) -> str:
        counts = {s: sum(1 for c in self.checks if c.status is s) for s in Status}
        parts = [f"{counts[s]} {s.value}" for s in Status if counts[s]]
        verdict = "healthy" if self.ok else "UNHEALTHY"
        return f"{verdict}: {', '.join(parts)} in {self.duration_ms:.0f} ms"


@dataclass(frozen=True)
class HealthTarget:
    """What to probe. `api_key` is used for the inference probe and never reported."""

    url: str
    source: str
    model: str
    cache_dir: Path | None = None
    state: DeploymentState | None = None
    container: str | None = None
    api_key: str | None = field(default=None, repr=False)
    auth: bool = True
    # Does the recorded deployment run, on its port? (ok, detail); set by ops.deploy, which
    # knows the targets (this module does not import ops.deploy: deploy imports it).
    state_check: Callable[[], tuple[bool, str]] | None = field(default=None, repr=False, compare=False)


# --- running the probes ------------------------------------------------------------


def check_health(target: HealthTarget, *, timeout: float = 10.0, concurrent: bool = True) -> HealthReport:
    """Run every probe concurrently; the report lists them in a fixed order.

    `concurrent=False` runs them one after another (the benchmark's anchor).
    """
    import requests

    started = time.perf_counter()
    session = requests.Session()
    # One connection per concurrent probe; the default pool of 10 is plenty.
    probes: list[Callable[[], list[Check]]] = [
        lambda: _liveness(session, target, timeout),
        lambda: _readiness_and_nodes(session, target, timeout),
        lambda: [_inference(session, target, timeout)],
        lambda: [_metrics(session, target, timeout)],
        lambda: [_gpu()],
        lambda: [_disk(target)],
        lambda: [_state(target)],
    ]
    with ThreadPoolExecutor(
        max_workers=len(probes) if concurrent else 1, thread_name_prefix="health"
    ) as pool:
        results = list(pool.map(lambda probe: probe(), probes))
    session.close()
    checks = tuple(c for group in results for c in group)
    return HealthReport(
        url=target.url,
        source=target.source,
        model=target.model,
        checks=checks,
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, BaseException | None]:
    start = time.perf_counter()
    try:
        value, error = fn(), None
    except Exception as exc:  # noqa: BLE001 - a probe's failure is its result, not a crash
        value, error = None, exc
    return value, (time.perf_counter() - start) * 1000, error


def _http_error(exc: BaseException) -> str:
    import requests

    if isinstance(exc, requests.ConnectionError):
        return "connection refused or unreachable"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return redact(str(exc))[:200]


def _body_text(response) -> str:
    return redact(response.text.strip().replace("\n", " "))[:200]


def _liveness(session, target: HealthTarget, timeout: float) -> list[Check]:
    response, ms, error = _timed(lambda: session.get(f"{target.url}/healthz", timeout=timeout))
    if error is not None:
        return [Check("liveness", Status.FAIL, True, ms, f"GET /healthz: {_http_error(error)}")]
    if response.status_code != 200:
        return [
            Check(
                "liveness",
                Status.FAIL,
                True,
                ms,
                f"/healthz answered {response.status_code}: {_body_text(response)}",
            )
        ]
    data = json_or_empty(response)
    detail = "alive" + (f", autoglm {data['version']}" if isinstance(data.get("version"), str) else "")
    return [Check("liveness", Status.OK, True, ms, detail, {k: data[k] for k in ("version",) if k in data})]


def _readiness_and_nodes(session, target: HealthTarget, timeout: float) -> list[Check]:
    response, ms, error = _timed(lambda: session.get(f"{target.url}/readyz", timeout=timeout))
    if error is not None:
        return [Check("readiness", Status.FAIL, True, ms, f"GET /readyz: {_http_error(error)}")]
    data = json_or_empty(response)
    nodes = _node_checks(data)
    if response.status_code != 200:
        reason = readiness_reason(data) or _body_text(response)
        return [
            Check(
                "readiness",
                Status.FAIL,
                True,
                ms,
                f"/readyz answered {response.status_code}: {redact(str(reason))[:200]}",
            ),
            *nodes,
        ]
    ready = sum(1 for c in nodes if c.status is Status.OK)
    detail = f"ready, {ready}/{len(nodes)} nodes serving" if nodes else "ready"
    queue = data.get("queue")
    if isinstance(queue, dict) and queue:
        detail += ", queue " + " ".join(f"{k} {v}" for k, v in queue.items())
    return [Check("readiness", Status.OK, True, ms, detail, {"queue": queue} if queue else {}), *nodes]


def readiness_reason(data: dict) -> str:
    """Why /readyz says not ready, in one line, from its JSON body ('' when it says nothing)."""
    for key in ("reason", "detail", "error"):
        if isinstance(data.get(key), str):
            return redact(data[key])[:200]
    nodes = data.get("nodes")
    if isinstance(nodes, list):
        if not nodes:
            return "no node yet"
        states = [
            f"{n.get('id', '?')} {n.get('state', '?')}" + (f": {n['error']}" if n.get("error") else "")
            for n in nodes
            if isinstance(n, dict)
        ]
        return redact("; ".join(states))[:300]
    return ""


def failed_nodes(data: dict) -> list[str]:
    """The errors of nodes that failed (a model that cannot load), when every node failed."""
    nodes = [n for n in data.get("nodes") or [] if isinstance(n, dict)]
    if nodes and all(str(n.get("state", "")).lower() in ("failed", "dead") for n in nodes):
        return [redact(str(n.get("error") or n.get("state")))[:200] for n in nodes]
    return []


def _node_checks(data: dict) -> list[Check]:
    """One check per node listed by /readyz (list or mapping of node records)."""
    raw = data.get("nodes")
    if isinstance(raw, dict):
        raw = [{"id": k, **(v if isinstance(v, dict) else {"state": v})} for k, v in raw.items()]
    if not isinstance(raw, list):
        return []
    checks = []
    for node in raw:
        if not isinstance(node, dict):
            continue
        node_id = str(node.get("id") or node.get("address") or "?")
        state = str(node.get("state", "unknown")).lower()
        queued = node.get("queued", node.get("running"))
        parts = [state]
        if node.get("model"):
            parts.append(f"model {node['model']}")
        if node.get("address"):
            parts.append(str(node["address"]))
        if node.get("running") is not None:
            capacity = node.get("capacity")
            parts.append(f"running {node['running']}" + (f"/{capacity}" if capacity else ""))
        if node.get("error"):
            parts.append(redact(str(node["error"]))[:160])
        status = {"ready": Status.OK, "starting": Status.WARN, "draining": Status.WARN}.get(
            state, Status.FAIL
        )
        checks.append(
            Check(f"node:{node_id}", status, False, 0.0, ", ".join(parts), {"state": state, "queued": queued})
        )
    return checks


def _inference(session, target: HealthTarget, timeout: float) -> Check:
    headers = {}
    if target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    elif target.auth:
        return Check(
            "inference",
            Status.FAIL,
            True,
            0.0,
            "no API key: pass --api-key or set AUTOGLM_API_KEY (deploy stores one in the state dir)",
        )
    body = {
        "model": target.model,
        "messages": [{"role": "user", "content": INFERENCE_PROMPT}],
        "max_tokens": INFERENCE_MAX_TOKENS,
    }
    response, ms, error = _timed(
        lambda: session.post(f"{target.url}/v1/chat/completions", json=body, headers=headers, timeout=timeout)
    )
    if error is not None:
        return Check("inference", Status.FAIL, True, ms, f"POST /v1/chat/completions: {_http_error(error)}")
    if response.status_code != 200:
        message = json_or_empty(response).get("error", {})
        text = message.get("message") if isinstance(message, dict) else None
        reason = redact(str(text or _body_text(response)))[:160]
        return Check(
            "inference",
            Status.FAIL,
            True,
            ms,
            f"chat completion answered {response.status_code}: {reason}",
        )
    data = json_or_empty(response)
    try:
        answer = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return Check("inference", Status.FAIL, True, ms, f"not a chat completion: {_body_text(response)}")
    tokens = (data.get("usage") or {}).get("completion_tokens")
    fallback = response.headers.get("x-autoglm-fallback")
    detail = f"{tokens if tokens is not None else '?'} tokens from {data.get('model', target.model)}"
    status = Status.OK
    if fallback:
        status, detail = Status.WARN, detail + f" (fell back to the {fallback} model)"
    return Check("inference", status, True, ms, detail, {"answer": answer, "completion_tokens": tokens})


def _metrics(session, target: HealthTarget, timeout: float) -> Check:
    response, ms, error = _timed(lambda: session.get(f"{target.url}/metrics", timeout=timeout))
    if error is not None:
        return Check("metrics", Status.FAIL, False, ms, f"GET /metrics: {_http_error(error)}")
    if response.status_code != 200:
        return Check("metrics", Status.FAIL, False, ms, f"/metrics answered {response.status_code}")
    from prometheus_client.parser import text_string_to_metric_families

    try:
        families = {f.name for f in text_string_to_metric_families(response.text)}
    except Exception as exc:  # noqa: BLE001 - unparsable text is the finding
        return Check("metrics", Status.FAIL, False, ms, f"not Prometheus text: {redact(str(exc))[:120]}")
    missing = [m for m in EXPECTED_METRICS if not any(f.startswith(m) for f in families)]
    if missing:
        return Check(
            "metrics", Status.WARN, False, ms, f"{len(families)} families, none named {', '.join(missing)}*"
        )
    return Check(
        "metrics", Status.OK, False, ms, f"{len(families)} metric families", {"families": len(families)}
    )


def _gpu() -> Check:
    from .envcheck.accelerators import query_gpus  # the one nvidia-smi query (env-check's)

    start = time.perf_counter()
    query = query_gpus(10.0, cuda_version=False)
    ms = (time.perf_counter() - start) * 1000
    if query.smi_path is None:
        return Check("gpu", Status.SKIP, False, 0.0, "no GPU (nvidia-smi not found)")
    if query.error:
        return Check("gpu", Status.WARN, False, ms, f"nvidia-smi failed: {query.error}")
    gpus, worst = [], 0.0
    for gpu in query.gpus:
        used, total = float(gpu.memory_used_mib or 0), float(gpu.memory_mib or 0)
        gpus.append({"index": str(gpu.index), "name": gpu.name, "used_mib": used, "total_mib": total})
        worst = max(worst, used / total if total else 0.0)
    if not gpus:
        return Check("gpu", Status.SKIP, False, ms, "nvidia-smi lists no GPU")
    detail = "; ".join(
        f"#{g['index']} {g['name']} {g['used_mib']:.0f}/{g['total_mib']:.0f} MiB" for g in gpus
    )
    status = Status.WARN if worst >= GPU_WARN_FRACTION else Status.OK
    return Check("gpu", status, False, ms, detail, {"gpus": gpus})


def _disk(target: HealthTarget) -> Check:
    start = time.perf_counter()
    path = target.cache_dir
    while path is not None and not path.exists() and path != path.parent:
        path = path.parent  # the cache may not exist yet: measure the filesystem it will live on
    if path is None:
        return Check("disk", Status.SKIP, False, 0.0, "no weights cache configured")
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return Check("disk", Status.WARN, False, 0.0, f"cannot measure {path}: {exc}")
    ms = (time.perf_counter() - start) * 1000
    detail = f"{size_text(usage.free)} free of {size_text(usage.total)} at {target.cache_dir}"
    if usage.free < DISK_FAIL_BYTES:
        status = Status.FAIL
    elif usage.free < DISK_WARN_BYTES:
        status = Status.WARN
    else:
        status = Status.OK
    return Check("disk", status, False, ms, detail, {"free_bytes": usage.free, "path": str(target.cache_dir)})


def _state(target: HealthTarget) -> Check:
    start = time.perf_counter()
    if target.state_check is None:
        return Check("state", Status.SKIP, False, 0.0, "no state file for a bare URL")
    ok, detail = target.state_check()
    ms = (time.perf_counter() - start) * 1000
    return Check("state", Status.OK if ok else Status.FAIL, True, ms, detail)


def json_or_empty(response) -> dict:
    """The response's JSON object, or {} when the body is not one."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
