"""Which deployment `health` probes: --url, --container, or the state directory's record.

In ops.deploy because it reads deploy's state, labels and targets; ops.health only
probes the `HealthTarget` it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import UsageError
from ..health import HealthTarget

if TYPE_CHECKING:
    from ...config import Config
    from .state import DeploymentState


def resolve_target(
    config: Config,
    *,
    url: str | None = None,
    container: str | None = None,
    state_dir: str | None = None,
    api_key: str | None = None,
) -> HealthTarget:
    """The deployment to probe: --url, --container, else the state directory's record."""
    import os

    from .model_info import default_model, hub_cache_dir
    from .repair import load_current
    from .state import StateDir, resolve_state_dir

    if url and container:
        raise UsageError("give either --url or --container, not both")
    state = StateDir(resolve_state_dir(config, state_dir))
    key = api_key or os.environ.get("AUTOGLM_API_KEY") or state.read_health_key()
    cache = hub_cache_dir(config)
    model = default_model(config).name
    if url:
        return HealthTarget(
            url=url.rstrip("/"),
            source="url",
            model=model,
            cache_dir=cache,
            api_key=key,
            auth=config.gateway.auth,
        )
    if container:  # its own deploy's key and mounts, unless a key or state dir was given
        explicit = api_key or os.environ.get("AUTOGLM_API_KEY") or (key if state_dir else None)
        return _container_target(container, config, cache, explicit)
    record = load_current(state)
    if record is None:
        raise UsageError(
            f"no deployment is recorded in {state.root}",
            remedy="Deploy first (`autoglm deploy`), or point at one with --url, --container or --state-dir.",
        )
    return HealthTarget(
        url=record.url,
        source=f"state:{state.root}",
        model=record.model,
        cache_dir=cache,
        state=record,
        container=record.container_name if record.target == "docker" else None,
        api_key=key,
        auth=_record_auth(record, config),
        state_check=state_check(record),
    )


def _record_auth(record: DeploymentState, config: Config) -> bool:
    from ...config import load_config

    try:
        return load_config(record.config_path, environ={}).gateway.auth
    except Exception:  # noqa: BLE001 - a vanished snapshot: fall back to the current config
        return config.gateway.auth


def _container_target(name: str, config: Config, cache: Path, key: str | None) -> HealthTarget:
    from .docker_target import container_facts

    facts = container_facts(name)
    labels = facts.labels
    port = int(labels.get("io.autoglm.port", config.gateway.port))
    model = labels.get("io.autoglm.model", config.model_pool.default)
    return HealthTarget(
        url=f"http://127.0.0.1:{port}",
        source=f"container:{name}",
        model=model,
        cache_dir=facts.cache_dir or cache,  # the mounted folder, not this config's
        container=name,
        api_key=key or facts.health_key,
        auth=labels.get("io.autoglm.auth", "true") == "true",
        state_check=state_check(None, container=name),
    )


def state_check(
    record: DeploymentState | None, *, container: str | None = None
) -> Callable[[], tuple[bool, str]]:
    """The `state` probe for a recorded deployment (or a bare container): does it run, on its port?"""
    from .targets import state_matches

    if record is not None and container is None and record.target == "docker":
        container = record.container_name
    return lambda: state_matches(record, container=container)
