"""What every deploy target (local, docker, systemd) provides to the deploy flow."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ...errors import UsageError
from ...redact import redact
from .model_info import ModelInfo, default_model
from .snapshot import ConfigSnapshot, write_snapshot
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

    @property
    def secrets(self) -> dict[str, str]:
        """deploy.env_file's values (never logged), read only when a deployment starts: rendering
        a unit or a dry run works without the file on this machine."""
        return read_env_file(self.config.deploy.env_file)

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

    @classmethod
    def for_record(cls, record: DeploymentState) -> LaunchContext:
        """The context a recorded deployment was started with (its snapshot): to start it again."""
        from ...config import load_config
        from .model_info import default_model

        config = load_config(record.config_path, environ={})
        snapshot = ConfigSnapshot(hash=record.config_hash, path=Path(record.config_path), config=config)
        state = StateDir(Path(record.config_path).parent.parent)
        return cls(config, snapshot, state, default_model(config), config.gateway.host, record.port)


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

    swaps: bool  # can start a new deployment beside the running one and hand the port over

    def launch(self, ctx: LaunchContext, *, side_port: int, beside: bool) -> DeploymentState:
        """Start the new deployment (status "starting"), able to take the port over later.

        `beside`: another deployment of this target holds the port; the new one serves on
        `side_port` until `join`."""
        ...

    def join(self, state: DeploymentState) -> None:
        """A deployment started beside the running one takes the port over (SIGUSR1)."""
        ...

    def promote(self, state: DeploymentState) -> DeploymentState:
        """After the old one is retired: the new one takes its name (docker); returns its record."""
        ...

    def liveness(self, state: DeploymentState) -> Liveness:
        """Is the recorded deployment's process / container / unit still running?"""
        ...

    def owns_port(self, state: DeploymentState, port: int) -> bool:
        """Is `port` held by this deployment (so replacing it frees the port)?"""
        ...

    def retire(self, state: DeploymentState) -> None:
        """Drain and stop a running deployment (it finishes what is in flight); keep it restorable."""
        ...

    def restore(self, state: DeploymentState, *, side_port: int, beside: bool) -> DeploymentState:
        """Start a recorded deployment again, fresh (rollback); returns its record ("starting")."""
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

    def follow(self, state: DeploymentState, lines: int = 40) -> Iterator[str]:
        """The last lines, then every new line as it comes (redacted), until the caller stops."""
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


def follow_file(path: str | os.PathLike | None, lines: int = 40, *, poll_s: float = 0.25) -> Iterator[str]:
    """`tail -f` of a text file, redacted; a file replaced or truncated is read from its start."""
    import time

    if not path:
        return
    position = Path(path).stat().st_size if Path(path).exists() else 0  # before the tail is read out
    yield from tail(path, lines).splitlines()
    pending = ""
    while True:
        try:
            size = Path(path).stat().st_size
            if size < position:
                position = 0
            if size > position:
                with open(path, "rb") as handle:
                    handle.seek(position)
                    data = handle.read()
                position += len(data)
                pending += data.decode("utf-8", "replace")
                *complete, pending = pending.split("\n")
                for line in complete:
                    yield redact(line)
                continue
        except OSError:
            pass
        time.sleep(poll_s)


def launch_context(config: Config, state: StateDir, *, write: bool = True) -> LaunchContext:
    """What a target needs to launch `config`: its snapshot (written unless `write=False`), the
    default model, host and port."""
    snapshot = write_snapshot(config, state, write=write)
    config = snapshot.config  # relative paths made absolute: the service may run elsewhere
    model = default_model(config)
    return LaunchContext(
        config=config,
        snapshot=snapshot,
        state=state,
        model=model,
        host=config.gateway.host,
        port=config.gateway.port,
    )
