"""The models loaded in this worker process, by name (one `ModelHost` each).

The worker plugin registers hosts here at worker start-up; actors find them here,
so a model is loaded once per process however it was asked for.
"""

from __future__ import annotations

import threading

from ..backends.base import BackendSettings
from .host import ModelHost

_hosts: dict[str, ModelHost] = {}
_lock = threading.Lock()


def host_for(settings: BackendSettings) -> ModelHost:
    with _lock:
        host = _hosts.get(settings.model)
        if host is None:
            host = _hosts[settings.model] = ModelHost(settings)
        return host


def loaded_models() -> list[str]:
    """Models this process hosts (for `serve`, to place actors where the model already is)."""
    with _lock:
        return sorted(_hosts)


def hosts() -> dict[str, ModelHost]:
    with _lock:
        return dict(_hosts)
