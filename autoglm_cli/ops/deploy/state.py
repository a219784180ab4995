"""The state directory: what runs, what ran before it, and the configs they run with.

Layout (default `./.autoglm`, or `deploy.state_dir`):

    deployment.json      the current deployment (a `DeploymentState`)
    previous.json        the one it replaced, kept for rollback
    next.json            a deployment being started beside the current one (blue-green)
    deploy.lock          pid of the deploy or rollback in progress
    configs/<hash>.yaml  effective config snapshots, immutable, named by content hash
    logs/                service logs of local deployments
    redeploy.json        the redeploy pipeline's journal (ops/redeploy.py)
    health.key           an API key for health probes (mode 0600; never printed)

Every file is written to a temporary sibling, fsynced and renamed, so a crash
never leaves a half-written state file behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...atomic import atomic_write
from ...errors import EnvironmentFailure

if TYPE_CHECKING:
    from ...config import Config

DEFAULT_STATE_DIR = ".autoglm"
STATE_SCHEMA = 1


@dataclass(frozen=True)
class DeploymentState:
    """One deployment as recorded in the state file."""

    target: str  # local | docker | systemd
    name: str
    url: str  # the gateway's base URL, e.g. http://127.0.0.1:8000
    port: int
    version: str  # autoglm's version inside the deployment
    config_hash: str
    config_path: str  # the snapshot the service runs with
    model: str
    weights_revision: str | None = None
    model_size_gb: float = 0.0
    started_at: float = 0.0
    status: str = "running"  # starting | running | stopped | dead
    ports: dict[str, Any] = field(default_factory=dict)  # gateway + every port the service listens on
    # local
    pid: int | None = None
    pid_create_time: float | None = None
    command: tuple[str, ...] = ()
    log_path: str | None = None
    # docker
    container_id: str | None = None
    container_name: str | None = None
    image: str | None = None
    # systemd
    unit_name: str | None = None
    unit_path: str | None = None

    def to_json(self) -> dict:
        return {"schema": STATE_SCHEMA, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> DeploymentState:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["command"] = tuple(kwargs.get("command") or ())
        return cls(**kwargs)


def resolve_state_dir(config: Config | None = None, override: str | os.PathLike | None = None) -> Path:
    """The state directory by precedence: option > config (`deploy.state_dir`) > ./.autoglm."""
    chosen = override or (config.deploy.state_dir if config is not None else None) or DEFAULT_STATE_DIR
    return Path(chosen).expanduser().absolute()


class StateDir:
    """Reads and writes the files of one state directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- paths ---------------------------------------------------------------

    @property
    def current_file(self) -> Path:
        return self.root / "deployment.json"

    @property
    def previous_file(self) -> Path:
        return self.root / "previous.json"

    @property
    def next_file(self) -> Path:
        return self.root / "next.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "deploy.lock"

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def journal_file(self) -> Path:
        return self.root / "redeploy.json"

    @property
    def health_key_file(self) -> Path:
        return self.root / "health.key"

    def ensure(self) -> StateDir:
        try:
            for folder in (self.root, self.configs, self.logs):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EnvironmentFailure(
                f"cannot create the state directory {self.root}: {exc.strerror or exc}",
                remedy="Point deploy.state_dir (or --state-dir) at a writable directory.",
            ) from None
        return self

    # -- deployments ---------------------------------------------------------

    def load_current(self) -> DeploymentState | None:
        """The current deployment as recorded (`repair.load_current` first brings a record a
        killed deploy left behind in line with what runs)."""
        return self._load(self.current_file)

    def needs_repair(self, record: DeploymentState | None) -> bool:
        """A killed deploy left `next.json` behind, or the record at `starting`."""
        return self.next_file.exists() or (record is not None and record.status == "starting")

    def load_next(self) -> DeploymentState | None:
        return self._load(self.next_file)

    def save_next(self, state: DeploymentState | None) -> None:
        if state is None:
            self.next_file.unlink(missing_ok=True)
            return
        self.ensure()
        atomic_write(self.next_file, json.dumps(state.to_json(), indent=2) + "\n")

    def load_previous(self) -> DeploymentState | None:
        return self._load(self.previous_file)

    def save_current(self, state: DeploymentState) -> None:
        self.ensure()
        atomic_write(self.current_file, json.dumps(state.to_json(), indent=2) + "\n")

    def save_previous(self, state: DeploymentState | None) -> None:
        if state is None:
            self.previous_file.unlink(missing_ok=True)
            return
        self.ensure()
        atomic_write(self.previous_file, json.dumps(state.to_json(), indent=2) + "\n")

    def _load(self, path: Path) -> DeploymentState | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise EnvironmentFailure(
                f"the state file {path} cannot be read: {exc}",
                remedy="Move the damaged file away; `autoglm deploy --status` then starts from scratch.",
            ) from None
        if not isinstance(data, dict) or "target" not in data:
            raise EnvironmentFailure(
                f"the state file {path} is not an autoglm deployment record",
                remedy="Move the file away or point --state-dir elsewhere.",
            )
        return DeploymentState.from_json(data)

    # -- the health probe's API key ---------------------------------------------

    def read_health_key(self) -> str | None:
        try:
            return self.health_key_file.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def write_health_key(self, key: str) -> None:
        self.ensure()
        atomic_write(self.health_key_file, key + "\n", mode=0o600)
