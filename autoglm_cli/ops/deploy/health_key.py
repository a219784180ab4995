"""The API key the health probes use: created once per state dir, stored mode 0600.

The gateway keeps only hashes of its keys (runtime/auth.py) and re-reads its keys
file when it changes, so deploy mints a key of its own with just the inference
permission and keeps the plain key in the state directory, where
`autoglm health` finds it. It is never printed.
"""

from __future__ import annotations

import os

from ...config import Config
from .state import StateDir

HEALTH_KEY_NAME = "autoglm-health"


def keys_file_for(config: Config):
    """The keys file the deployed gateway reads (the runtime's own precedence)."""
    from ...runtime.auth import resolve_keys_file

    return resolve_keys_file(None, config, os.environ)


def ensure_health_key(config: Config, state: StateDir) -> str | None:
    """The key for the health probes (None when the gateway runs without auth)."""
    if not config.gateway.auth:
        return None
    from ...runtime.auth import KeyStore, find_key

    store = KeyStore(keys_file_for(config))
    existing = state.read_health_key()
    if existing and find_key(store.list(), existing) is not None:
        return existing
    _record, key = store.create(name=HEALTH_KEY_NAME, permissions=("model:read", "model:infer"))
    state.write_health_key(key)
    return key
