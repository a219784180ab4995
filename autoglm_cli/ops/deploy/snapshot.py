"""The effective config of a deployment, frozen to a file named by its content hash.

A deployment runs with a snapshot, not with the user's file: environment
overrides are baked in, later edits to the file do not change what runs, and a
rollback restarts the previous deployment with exactly its own config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .state import StateDir, atomic_write

if TYPE_CHECKING:
    from ...config import Config

# Fields that describe how the config was loaded, not what it says.
_NOT_CONFIG = ("source", "warnings")


@dataclass(frozen=True)
class ConfigSnapshot:
    hash: str  # sha256 of the canonical JSON form, hex
    path: Path
    config: Config


def config_document(config: Config) -> dict[str, Any]:
    """The config as plain data (what the snapshot file holds)."""
    from ...jsonable import to_jsonable

    data = to_jsonable(config)
    for name in _NOT_CONFIG:
        data.pop(name, None)
    # A JSON round trip turns Duration (a float subclass) into plain floats YAML can write.
    return json.loads(json.dumps(data))


def config_hash(config: Config) -> str:
    canonical = json.dumps(config_document(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def replace_fields(config: Config, **sections: dict[str, Any]) -> Config:
    """A copy of `config` with fields of some sections replaced, e.g. gateway={"port": 9000}."""
    from ...config import with_overrides

    dotted = {f"{name}.{key}": value for name, fields in sections.items() for key, value in fields.items()}
    return with_overrides(config, dotted, none_means_unset=False)


def absolute_paths(config: Config, base: Path | None = None) -> Config:
    """Relative file paths made absolute against `base` (the cwd), as the user meant them.

    The service may run elsewhere (a systemd unit's WorkingDirectory, a container),
    so a snapshot must not depend on the directory deploy ran in.
    """
    root = base or Path.cwd()

    def fix(value: str | None) -> str | None:
        if not value or value.startswith(("/", "~")) or "://" in value:
            return value
        return str((root / value).absolute())

    models = {
        name: dataclasses.replace(spec, source=fix(spec.source) or "")
        if spec.source and (spec.source.startswith((".", "/")) or (root / spec.source).is_dir())
        else spec
        for name, spec in config.models.items()
    }
    return replace_fields(
        dataclasses.replace(config, models=models),
        gateway={"keys_file": fix(config.gateway.keys_file)},
        weights={"cache_dir": fix(config.weights.cache_dir)},
        deploy={
            "state_dir": fix(config.deploy.state_dir),
            "env_file": fix(config.deploy.env_file),
            "checkout": fix(config.deploy.checkout),
        },
    )


def write_snapshot(config: Config, state: StateDir, *, write: bool = True) -> ConfigSnapshot:
    """Write the snapshot (once per distinct config) and return where it is.

    `write=False` only computes it (dry runs change nothing).
    """
    import yaml

    config = absolute_paths(config)
    digest = config_hash(config)
    path = state.configs / f"{digest[:16]}.yaml"
    if write and not path.is_file():
        state.ensure()
        header = (
            f"# autoglm deployment config snapshot {digest}\n# written by `autoglm deploy`; do not edit\n"
        )
        body = yaml.safe_dump(config_document(config), sort_keys=False)
        atomic_write(path, header + body, mode=0o600)  # may hold upstream API keys
    return ConfigSnapshot(hash=digest, path=path, config=config)
