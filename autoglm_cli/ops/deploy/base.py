"""What every deploy target (local, docker, systemd) provides to the deploy flow."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ...errors import UsageError
from ...redact import redact
from .model_info import ModelInfo
from .snapshot import ConfigSnapshot
from .state import DeploymentState, StateDir

if TYPE_CHECKING:
    from ...config import Config


@dataclass(frozen=True)
class LaunchContext:
    """Everything a target needs to start one deployment."""

    config: Config
    snapshot: ConfigSnapshot
    state: StateDir
    model: ModelInfo
    host: str
    port: int
    secrets: dict[str, str] = field(default_factory=dict)  # from deploy.env_file; never logged

    @property
    def probe_host(self) -> str:
        """Where a client on this machine reaches the gateway."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host

    @property
    def url(self) -> str:
        host = f"[{self.probe_host}]" if ":" in self.probe_host else self.probe_host
        return f"http://{host}:{self.port}"

    def new_state(self, target: str, *, name: str | None = None, **specific) -> DeploymentState:
        """The state of a deployment just launched: what every target records, plus its own fields."""
        import time

        from ... import __version__

        return DeploymentState(
            target=target,
            name=name or self.config.deploy.name,
            url=self.url,
            port=self.port,
            version=__version__,
            config_hash=self.snapshot.hash,
            config_path=str(self.snapshot.path),
            model=self.model.name,
            weights_revision=self.model.revision,
            model_size_gb=self.model.size_gb,
            started_at=time.time(),
            status="starting",
            ports={"gateway": self.port},
            **specific,
        )


@dataclass(frozen=True)
class Tidied:
    """What `Target.tidy` removed, and what it could not do (None: nothing went wrong)."""

    removed: tuple[str, ...] = ()
    problem: str | None = None


@dataclass(frozen=True)
class Liveness:
    alive: bool
    detail: str


class Target(Protocol):
    name: str

    def plan(self, ctx: LaunchContext) -> list[str]:
        """What `launch` would do, in words (for --dry-run)."""
        ...

    def prepare(self, ctx: LaunchContext) -> None:
        """Checks and slow preparation (image build) before anything running is touched."""
        ...

    def launch(self, ctx: LaunchContext) -> DeploymentState:
        """Start the new deployment; returns its record (status "starting")."""
        ...

    def liveness(self, state: DeploymentState) -> Liveness:
        """Is the recorded deployment's process / container / unit still running?"""
        ...

    def owns_port(self, state: DeploymentState, port: int) -> bool:
        """Is `port` held by this deployment (so replacing it frees the port)?"""
        ...

    def retire(self, state: DeploymentState) -> None:
        """Stop a running deployment so a new one can take its place; keep it restorable."""
        ...

    def restore(self, state: DeploymentState) -> DeploymentState:
        """Start a retired deployment again (rollback); returns its fresh record."""
        ...

    def discard(self, state: DeploymentState) -> None:
        """Stop and remove a new deployment that failed its health gate."""
        ...

    def stop(self, state: DeploymentState) -> None:
        """`autoglm deploy --stop`: stop the deployment for good."""
        ...

    def tidy(self, live: DeploymentState) -> Tidied:
        """After a deployment passed its gate: remove what no deployment uses any more (old
        images). Never touches the live or the previous deployment, and never raises."""
        ...

    def logs(self, state: DeploymentState, lines: int = 40) -> str:
        """The last lines of the deployment's log (redacted)."""
        ...


def read_env_file(path: str | os.PathLike | None) -> dict[str, str]:
    """KEY=VALUE lines (comments, blank lines, `export`, quotes as docker's --env-file and systemd take)."""
    if not path:
        return {}
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot read the env file {file}: {exc.strerror or exc}",
            remedy="Fix deploy.env_file (KEY=VALUE lines holding secrets such as HF_TOKEN).",
        ) from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().replace("_", "").isalnum():
            raise UsageError(
                # The line itself is never echoed: in a secrets file any text may be one.
                f"{file}:{number}: expected KEY=VALUE (the line is not shown: it may hold a secret)",
                remedy="Write one KEY=VALUE per line in the env file.",
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def tail(path: str | os.PathLike | None, lines: int = 40) -> str:
    """The last `lines` lines of a text file, redacted ('' when it cannot be read)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return redact("\n".join(data.splitlines()[-lines:]))
