"""Network: DNS resolution and a TCP connect for each configured endpoint.

Endpoints come from `env_check.required_endpoints` (unreachable = fail),
`env_check.endpoints` and `weights.endpoints` (unreachable = warn), and the
Hugging Face endpoint (`HF_ENDPOINT`, default https://huggingface.co).

Each probe has one deadline, `env_check.timeout`, shared by its DNS lookup and its
connect, so a probe never takes longer than the timeout however the time splits.
The runner starts every probe at once (one thread each), so N unreachable
endpoints cost one timeout, not N.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ...config import Config
from ...errors import ConfigError
from ...redact import redact_url
from .model import Check, CheckSpec, Severity

CATEGORY = "network"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git": 9418}

Resolver = Callable[..., list]  # socket.getaddrinfo's signature


@dataclass(frozen=True)
class Endpoint:
    label: str  # as configured, secrets masked
    host: str
    port: int


@dataclass(frozen=True)
class ProbeResult:
    endpoint: Endpoint
    addresses: tuple[str, ...] = ()
    resolve_s: float | None = None
    connected_to: str | None = None
    connect_s: float | None = None
    error: str = ""  # empty when connected
    stage: str = ""  # "dns" or "tcp" when it failed
    attempts: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.connected_to is not None


def parse_endpoint(text: str, field: str | None = None) -> Endpoint:
    """`host:port`, `[::1]:443` or a URL (`https://host/path`, default port by scheme)."""
    label = redact_url(text.strip())
    raw = text.strip()
    if "://" in raw:
        parts = urlsplit(raw)
        try:
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ConfigError(
                f"endpoint {label!r} needs a host and a port (or an http/https URL)", field=field
            )
        return Endpoint(label, parts.hostname, port)
    parts = urlsplit("//" + raw)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ConfigError(
            f"endpoint {label!r} needs a port: write host:port or a URL",
            field=field,
            remedy="For example `registry.internal:5000` or `https://huggingface.co`.",
        )
    return Endpoint(label, parts.hostname, port)


def hf_endpoint(environ=os.environ) -> str:
    return environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT


def configured_endpoints(config: Config, environ=os.environ) -> list[tuple[Endpoint, Severity, str]]:
    """(endpoint, severity, why it is checked), first mention wins, required first."""
    offline = environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    sources: list[tuple[list[str], Severity, str, str]] = [
        (
            config.env_check.required_endpoints,
            Severity.REQUIRED,
            "env_check.required_endpoints",
            "configured",
        ),
        (config.env_check.endpoints, Severity.RECOMMENDED, "env_check.endpoints", "configured"),
        (config.weights.endpoints, Severity.RECOMMENDED, "weights.endpoints", "weights mirror"),
        (
            [hf_endpoint(environ)],
            Severity.INFO if offline else Severity.RECOMMENDED,
            "HF_ENDPOINT",
            "HF endpoint",
        ),
    ]
    seen: dict[tuple[str, int], tuple[Endpoint, Severity, str]] = {}
    for entries, severity, key, why in sources:
        for i, text in enumerate(entries):
            endpoint = parse_endpoint(text, field=f"{key}[{i}]" if key != "HF_ENDPOINT" else key)
            seen.setdefault((endpoint.host.lower(), endpoint.port), (endpoint, severity, why))
    return list(seen.values())


def plan(config: Config, resolver: Resolver | None = None) -> list[CheckSpec]:
    timeout = float(config.env_check.timeout)
    return [
        CheckSpec(
            CATEGORY,
            endpoint.label,
            severity,
            f"DNS + TCP connect to {endpoint.host}:{endpoint.port} ({why}), {timeout:g} s timeout",
            run=lambda spec, endpoint=endpoint: check_endpoint(spec, endpoint, timeout, resolver),
            timeout=timeout + 0.5,  # the probe keeps its own deadline; this is a backstop for a hung resolver
        )
        for endpoint, severity, why in configured_endpoints(config)
    ]


def probe(endpoint: Endpoint, timeout: float, resolver: Resolver | None = None) -> ProbeResult:
    """Resolve and connect within `timeout` seconds in total."""
    resolver = resolver or socket.getaddrinfo
    start = time.monotonic()
    deadline = start + timeout
    try:
        infos = resolver(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        return ProbeResult(
            endpoint, error=f"DNS lookup of {endpoint.host} failed: {_reason(exc)}", stage="dns"
        )
    resolved = time.monotonic()
    addresses = tuple(dict.fromkeys(info[4][0] for info in infos))
    attempts: list[str] = []
    for family, socktype, proto, _name, sockaddr in infos:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            attempts.append(f"{_fmt(sockaddr)}: timed out after {timeout:g} s")
            break
        t0 = time.monotonic()
        try:
            with socket.socket(family, socktype, proto) as sock:
                sock.settimeout(remaining)
                sock.connect(sockaddr)
        except TimeoutError:
            attempts.append(f"{_fmt(sockaddr)}: timed out after {timeout:g} s")
            continue
        except OSError as exc:  # refused, unreachable, address family not supported
            attempts.append(f"{_fmt(sockaddr)}: {_reason(exc)}")
            continue
        return ProbeResult(
            endpoint,
            addresses,
            resolve_s=resolved - start,
            connected_to=_fmt(sockaddr),
            connect_s=time.monotonic() - t0,
            attempts=tuple(attempts),
        )
    return ProbeResult(
        endpoint,
        addresses,
        resolve_s=resolved - start,
        error="TCP connect failed: " + "; ".join(attempts or ["no address to connect to"]),
        stage="tcp",
        attempts=tuple(attempts),
    )


def check_endpoint(spec: CheckSpec, endpoint: Endpoint, timeout: float, resolver: Resolver | None) -> Check:
    result = probe(endpoint, timeout, resolver)
    details = {
        "host": endpoint.host,
        "port": endpoint.port,
        "addresses": list(result.addresses),
        "resolve_ms": _ms(result.resolve_s),
        "connect_ms": _ms(result.connect_s),
        "stage_failed": result.stage or None,
    }
    if result.ok:
        return spec.ok(f"{result.connected_to} connected in {_ms(result.connect_s)} ms", **details)
    if result.stage == "dns":
        remedy = f"Check the name {endpoint.host} and the DNS resolver (/etc/resolv.conf), or fix the config."
    else:
        remedy = f"Check that {endpoint.host}:{endpoint.port} is up and that no firewall or proxy blocks it."
    return spec.problem(result.error, remedy, **details)


def _fmt(sockaddr) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
