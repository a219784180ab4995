"""The one pooled HTTP session all downloads of a run share.

Sized from the config's `connection_pool` and `read_timeout`; the Hub token is
sent only to the endpoints' own hosts (requests drops it on a redirect to another
host, such as the CDN that serves LFS files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ... import __version__
from ...config import Config
from ...retry import RetryPolicy, parse_retry_after

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class HttpSettings:
    max_connections: int = 100
    max_idle_connections: int = 20
    read_timeout: float = 60.0
    connect_timeout: float = 15.0

    @property
    def timeout(self) -> tuple[float, float]:
        return (min(self.connect_timeout, self.read_timeout), self.read_timeout)

    @classmethod
    def from_config(cls, config: Config) -> HttpSettings:
        pool = config.connection_pool
        return cls(
            max_connections=pool.max_connections,
            max_idle_connections=pool.max_idle_connections,
            read_timeout=float(config.read_timeout),
        )


def policy_from_config(config: Config, **overrides) -> RetryPolicy:
    """Retries per the config's `retry` section (tries, base, max_delay)."""
    return RetryPolicy.from_settings(config.retry, **overrides)


class TransientHttpError(OSError):
    """A status worth retrying (429, 5xx); carries the server's Retry-After in seconds."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def retry_after_header(headers: Mapping[str, str] | None) -> float | None:
    return parse_retry_after((headers or {}).get("Retry-After"))


def make_session(settings: HttpSettings, *, jobs: int, token: str | None, token_hosts: Sequence[str] = ()):
    """A requests session with one connection pool per host, big enough for `jobs` parallel files."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(
        pool_connections=max(1, settings.max_idle_connections),
        pool_maxsize=max(jobs, min(settings.max_connections, max(jobs, settings.max_idle_connections))),
        max_retries=0,  # retries are ours: with backoff, Retry-After and resume
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"autoglm/{__version__}"
    session.headers["Accept-Encoding"] = "identity"  # sizes and hashes are of the raw bytes
    if token:
        session.auth = _HubTokenAuth(token, {urlsplit(h).netloc for h in token_hosts})
    return session


class _HubTokenAuth:
    """`Authorization: Bearer <token>` for the endpoints' hosts only (never for CDNs or plain URLs)."""

    def __init__(self, token: str, hosts: set[str]) -> None:
        self._token = token
        self._hosts = hosts

    def __call__(self, request):
        if urlsplit(request.url).netloc in self._hosts:
            request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:  # never the token, even in a debugger or a log of the session
        return "<hub token auth>"
