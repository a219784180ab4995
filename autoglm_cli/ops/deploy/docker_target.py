"""`--target docker`: the project's image, run through the docker SDK.

- The image is built from the project's `Dockerfile` with every dependency as a
  pre-built wheel in the build context (`pip wheel` on the host), so the build
  needs no network; it is tagged by a hash of what goes into it and reused when
  that tag exists. `deploy.docker.image` skips the build.
- The container runs with host networking, a restart policy, the HF cache and a
  config made for the container mounted read-only, secrets from `deploy.env_file`
  passed as environment at run time (never in the image), and GPUs requested when
  the host has some.
- Blue-green on the same port: with a container of this deployment running, the new
  one starts beside it as `<name>-next` (host networking, the port bound with
  SO_REUSEPORT, served on a side port until the gate passed: runtime/swap.py),
  takes the port over on SIGUSR1, then the old one drains, stops and is kept as
  `<name>-previous`; the new one is renamed `<name>`. A failed gate removes only
  `<name>-next`. A rollback starts a fresh container from the previous record's image
  and config the same way. `deploy --stop` removes the container.
- Once the new container passed its gate, the images deploy built before (repository
  `autoglm`, label `io.autoglm.version`) that no container uses are removed: each source
  change builds a new image of a few hundred MB. Images any container uses (the live
  one, `-previous`, stopped ones) stay, and so does every image without that label or
  not tagged the way deploy tags its builds. An engine error here is reported, never
  raised: the new deployment is live and healthy by then.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ... import __version__
from ...errors import EnvironmentFailure, UsageError
from ...redact import redact
from .base import LaunchContext, Liveness, Tidied, launch_context
from .snapshot import replace_fields
from .state import DeploymentState, atomic_write

IMAGE_REPO = "autoglm"
IMAGE_UID = 10001  # the Dockerfile's APP_UID
CONTAINER_CACHE = "/var/cache/autoglm/hub"
CONTAINER_ETC = "/etc/autoglm"
CONTAINER_CONFIG = "/etc/autoglm/config.yaml"
CONTAINER_KEYS = "/etc/autoglm/keys.json"
CONTAINER_STATE = "/var/lib/autoglm"
STOP_TIMEOUT_S = 30  # SIGTERM -> the drain and requests in flight -> SIGKILL
BUILT_LABEL = "io.autoglm.version"  # on every image deploy builds (and only on those)


def docker_client():
    """A client for the engine at DOCKER_HOST (or the local socket), or a clear error."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # pragma: no cover - docker is a core dependency
        raise EnvironmentFailure("the docker Python SDK is not installed") from None
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        raise EnvironmentFailure(
            f"no Docker engine answers ({redact(str(exc))[:200]})",
            remedy="Start the engine (`dockerd`, or `systemctl start docker`) or set DOCKER_HOST.",
        ) from None
    return client


@dataclass(frozen=True)
class ContainerFacts:
    """What `health --container` needs to probe a container the way deploy's gate does."""

    labels: dict[str, str]
    cache_dir: Path | None  # the host folder mounted as the container's HF cache
    health_key: str | None  # from the state directory of the deploy that started it


def container_facts(name: str) -> ContainerFacts:
    from docker.errors import NotFound

    from .state import StateDir

    try:
        container = docker_client().containers.get(name)
    except NotFound:
        raise UsageError(f"no container named {name!r}", remedy="List them with `docker ps -a`.") from None
    labels = dict(container.labels or {})
    mounts = {m.get("Destination"): m.get("Source") for m in container.attrs.get("Mounts", [])}
    cache = mounts.get(CONTAINER_CACHE)
    state_dir = labels.get("io.autoglm.state-dir")
    key = StateDir(Path(state_dir)).read_health_key() if state_dir else None
    return ContainerFacts(labels, Path(cache) if cache else None, key)


def build_image(config) -> str:
    """The image `deploy --target docker` runs for `config`, built when missing; its tag."""
    from .state import StateDir, resolve_state_dir

    target = DockerTarget()
    ctx = launch_context(config, StateDir(resolve_state_dir(config)), write=False)
    target.prepare(ctx)
    return target.image_tag(ctx)


def project_root() -> Path | None:
    """The source checkout autoglm runs from (holding the Dockerfile), if any."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "Dockerfile").is_file() and (root / "pyproject.toml").is_file() else None


def _source_hash(root: Path, extras: list[str], base_image: str | None) -> str:
    digest = hashlib.sha256()
    digest.update(f"{__version__}|{','.join(sorted(extras))}|{base_image or ''}".encode())
    files = [root / "Dockerfile", root / "pyproject.toml", root / "README.md"]
    files += sorted(
        p for p in (root / "autoglm_cli").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _installed_versions() -> list[tuple[str, str]]:
    """(name, version) of every distribution in this environment but autoglm itself."""
    from importlib.metadata import distributions

    seen: dict[str, str] = {}
    for dist in distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name and name != "autoglm":
            seen.setdefault(name, dist.version)
    return sorted(seen.items())


def _not_world_readable(folder: Path) -> list[Path]:
    """Files (symlinks followed) under `folder` that other users cannot read."""
    found = []
    for path in folder.rglob("*"):
        try:
            st = path.stat()
        except OSError:
            continue
        if path.is_file() and st.st_uid != IMAGE_UID and not st.st_mode & 0o004:
            found.append(path)
    return found


def _is_built_tag(tag: str) -> bool:
    """Whether `tag` has the shape of the tags `image_tag` gives (autoglm:VERSION-HASH12): labels
    are inherited, so an image someone built FROM ours carries our label too."""
    repo, _, version_hash = tag.partition(":")
    source_hash = version_hash.rpartition("-")[2]
    return repo == IMAGE_REPO and len(source_hash) == 12 and all(c in "0123456789abcdef" for c in source_hash)


def _gpu_requests(mode: str) -> list:
    import docker

    wants = mode == "all" or (
        mode == "auto" and (Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi"))
    )
    return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])] if wants else []


class DockerTarget:
    name = "docker"
    swaps = True

    def __init__(self) -> None:
        self._client = None
        self._tag: str | None = None  # computed once: the source must not change between build and run

    @property
    def client(self):
        if self._client is None:
            self._client = docker_client()
        return self._client

    # -- the image ---------------------------------------------------------------

    def image_tag(self, ctx: LaunchContext) -> str:
        settings = ctx.config.deploy.docker
        if settings.image:
            return settings.image
        if self._tag is not None:
            return self._tag
        root = project_root()
        if root is None:
            raise UsageError(
                "the docker target builds from autoglm's source checkout, and none was found",
                remedy="Set deploy.docker.image to a pre-built autoglm image.",
            )
        source_hash = _source_hash(root, settings.extras, settings.base_image)
        self._tag = f"{IMAGE_REPO}:{__version__}-{source_hash[:12]}"
        return self._tag

    def plan(self, ctx: LaunchContext) -> list[str]:
        settings = ctx.config.deploy.docker
        tag = self.image_tag(ctx)
        name = ctx.config.deploy.name
        gpus = "GPUs requested" if _gpu_requests(settings.gpus) else "no GPUs"
        return [
            f"image {tag}"
            + ("" if settings.image else " (built from the Dockerfile with local wheels unless present)"),
            f"start {name}-next beside the running container, gate it on a side port, hand the port "
            f"over, drain and stop the old one (kept as {name}-previous for rollback)",
            f"run {name}: host network, restart={settings.restart}, {gpus}, "
            f"HF cache {ctx.snapshot.config.weights.cache_dir or 'default'} mounted read-only",
            f"once it is healthy, remove older images deploy built ({IMAGE_REPO}:*) that no container uses",
        ]

    def prepare(self, ctx: LaunchContext) -> None:
        from docker.errors import ImageNotFound

        self._check_readable(ctx)

        tag = self.image_tag(ctx)
        try:
            self.client.images.get(tag)
            return
        except ImageNotFound:
            if ctx.config.deploy.docker.image:
                raise UsageError(
                    f"the image {tag} does not exist on this engine",
                    remedy="Build or load it first, or unset deploy.docker.image to let deploy build one.",
                ) from None
        self._build(ctx, tag)

    def _check_readable(self, ctx: LaunchContext) -> None:
        """The container runs as a non-root user: the weights it mounts must be readable by it.

        Files saved by root with mode 0600 (transformers' save_pretrained writes some so)
        would fail the model load inside the container; say so before anything is touched.
        """
        from .model_info import hub_cache_dir, repo_folder

        folders = []
        for name in (ctx.config.model_pool.default, ctx.config.model_pool.backup):
            spec = ctx.config.models.get(name) if name else None
            if spec is None or not spec.source:
                continue
            local = Path(spec.source).expanduser()
            folders.append(local if local.is_dir() else repo_folder(hub_cache_dir(ctx.config), spec.source))
        unreadable = [path for folder in folders if folder.is_dir() for path in _not_world_readable(folder)]
        if unreadable:
            shown = ", ".join(str(p) for p in unreadable[:3]) + (" ..." if len(unreadable) > 3 else "")
            raise UsageError(
                f"{len(unreadable)} weight file(s) cannot be read by the container's non-root user "
                f"(uid {IMAGE_UID}): {shown}",
                remedy=f"Make them readable: chmod -R a+rX {folders[0]}",
            )

    def _build(self, ctx: LaunchContext, tag: str) -> None:
        from docker.errors import APIError, BuildError

        settings = ctx.config.deploy.docker
        root = project_root()
        assert root is not None  # image_tag checked it
        with tempfile.TemporaryDirectory(prefix="autoglm-image-", dir=ctx.state.ensure().root) as tmp:
            context = Path(tmp)
            shutil.copy2(root / "Dockerfile", context / "Dockerfile")
            shutil.copy2(root / "pyproject.toml", context / "pyproject.toml")
            shutil.copy2(root / "README.md", context / "README.md")
            shutil.copytree(
                root / "autoglm_cli",
                context / "autoglm_cli",
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
            self._wheels(root, settings.extras, context / "wheels")
            buildargs = {"EXTRAS": ",".join(settings.extras), "APP_VERSION": __version__}
            if settings.base_image:
                buildargs["BASE_IMAGE"] = settings.base_image
            try:
                self.client.images.build(
                    path=str(context),
                    tag=tag,
                    buildargs=buildargs,
                    network_mode="host",
                    rm=True,
                    labels={BUILT_LABEL: __version__},
                )
            except BuildError as exc:
                log = "".join(
                    str(chunk.get("stream", "")) for chunk in exc.build_log if isinstance(chunk, dict)
                )
                raise EnvironmentFailure(
                    f"building {tag} failed: {redact(exc.msg)}\n{redact(log[-1500:])}",
                    remedy="Set deploy.docker.base_image to an image present on this engine "
                    "(no registry? see docs/deploy.md for a debootstrap base image).",
                ) from None
            except APIError as exc:
                raise EnvironmentFailure(f"building {tag} failed: {redact(str(exc))[:300]}") from None

    def _wheels(self, root: Path, extras: list[str], out: Path) -> None:
        """Every dependency as a wheel, so the image build runs without network.

        Pinned to the versions installed here (what this deployment was tested with):
        an unpinned `torch` would otherwise resolve to the multi-GB CUDA build.
        """
        spec = f"{root}[{','.join(extras)}]" if extras else str(root)
        constraints = out.parent / "constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in _installed_versions()))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--disable-pip-version-check",
                "--constraint",
                str(constraints),
                spec,
                "-w",
                str(out),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise EnvironmentFailure(
                f"`pip wheel` for the image failed: {redact(proc.stderr.strip())[-600:]}",
                remedy="Make the dependencies installable here (an index or --find-links), "
                "or set deploy.docker.image to a pre-built image.",
            )

    # -- the container -------------------------------------------------------------

    def _container_config(self, ctx: LaunchContext) -> dict[str, dict]:
        """The host paths to mount, with a config folder made for the container.

        The folder (`<state>/docker/<config hash>/`: config.yaml and a copy of the keys
        file) is owned by the image's non-root user and readable by it alone; keys
        created later reach the container with the next deploy.
        """
        import shutil as _shutil

        import yaml

        from .health_key import keys_file_for
        from .model_info import hub_cache_dir
        from .snapshot import config_document

        config = ctx.config
        mounts: dict[str, dict] = {}
        cache = hub_cache_dir(config)
        cache.mkdir(parents=True, exist_ok=True)
        mounts[str(cache)] = {"bind": CONTAINER_CACHE, "mode": "ro"}
        folder = ctx.state.ensure().root / "docker" / ctx.snapshot.hash[:16]
        folder.mkdir(parents=True, exist_ok=True)
        gateway: dict = {"host": ctx.host, "port": ctx.port}
        keys_file = keys_file_for(config)
        if keys_file.is_file():
            _shutil.copyfile(keys_file, folder / "keys.json.tmp")
            os.replace(folder / "keys.json.tmp", folder / "keys.json")
            gateway["keys_file"] = CONTAINER_KEYS
        models = {}
        for name, spec in config.models.items():
            local = Path(spec.source).expanduser() if spec.source else None
            if local is not None and local.is_dir():
                inside = f"/models/{name}"
                mounts[str(local.resolve())] = {"bind": inside, "mode": "ro"}
                spec = replace(spec, source=inside)
            models[name] = spec
        inner = replace_fields(
            replace(config, models=models),
            weights={"cache_dir": CONTAINER_CACHE},
            gateway=gateway,
            deploy={"state_dir": CONTAINER_STATE, "env_file": None},
        )
        atomic_write(
            folder / "config.yaml", yaml.safe_dump(config_document(inner), sort_keys=False), mode=0o600
        )
        for path in (folder, *folder.iterdir()):
            path.chmod(0o700 if path.is_dir() else 0o600)
            if os.geteuid() == 0:
                os.chown(path, IMAGE_UID, IMAGE_UID)  # the image's user, and nobody else
            elif path.is_file():
                path.chmod(0o644)  # not root: cannot give the files away, so let them be read
        if os.geteuid() != 0:
            folder.chmod(0o755)
        mounts[str(folder)] = {"bind": CONTAINER_ETC, "mode": "ro"}
        return mounts

    def launch(self, ctx: LaunchContext, *, side_port: int, beside: bool) -> DeploymentState:
        return self._run(ctx, self.image_tag(ctx), side_port=side_port, beside=beside)

    def restore(self, state: DeploymentState, *, side_port: int, beside: bool) -> DeploymentState:
        if not state.image:
            raise EnvironmentFailure("the previous deployment recorded no image; nothing to restore")
        return self._run(LaunchContext.for_record(state), state.image, side_port=side_port, beside=beside)

    def _run(self, ctx: LaunchContext, tag: str, *, side_port: int, beside: bool) -> DeploymentState:
        from docker.errors import APIError

        from ...runtime.swap import SIDE_PORT_ENV

        settings = ctx.config.deploy.docker
        name = ctx.config.deploy.name + ("-next" if beside else "")
        mounts = self._container_config(ctx)
        self._remove_if_exists(name)  # a leftover that is not the recorded deployment
        start_period = max(
            30,
            int(
                ctx.config.deploy.health_timeout + ctx.config.deploy.health_timeout_per_gb * ctx.model.size_gb
            ),
        )
        restart = {"Name": settings.restart}
        if settings.restart == "on-failure":
            restart["MaximumRetryCount"] = 5
        environment = {
            "HF_HUB_OFFLINE": "1",
            "AUTOGLM_CONFIG": CONTAINER_CONFIG,
            SIDE_PORT_ENV: str(side_port),
            **ctx.secrets,
        }
        try:
            container = self.client.containers.run(
                tag,
                command=["serve", "--config", CONTAINER_CONFIG, "--host", ctx.host, "--port", str(ctx.port)],
                name=name,
                detach=True,
                network_mode="host",
                restart_policy=restart,
                volumes=mounts,
                environment=environment,
                device_requests=_gpu_requests(settings.gpus),
                labels={
                    "io.autoglm.port": str(ctx.port),
                    "io.autoglm.model": ctx.model.name,
                    "io.autoglm.config-hash": ctx.snapshot.hash,
                    "io.autoglm.version": __version__,
                    "io.autoglm.auth": "true" if ctx.config.gateway.auth else "false",
                    "io.autoglm.state-dir": str(ctx.state.root),  # where `health --container` finds its key
                },
                healthcheck={
                    "test": ["CMD", "python", "-m", "autoglm_cli.ops.deploy.probe"],
                    "interval": 5 * 10**9,
                    "timeout": 5 * 10**9,
                    "start_period": start_period * 10**9,
                    "retries": 3,
                },
            )
        except APIError as exc:
            self._remove_if_exists(name)  # created but not started: leave nothing behind
            raise EnvironmentFailure(
                f"docker could not start the container: {redact(str(exc))[:300]}",
                remedy="GPU requested without the NVIDIA container toolkit? Set deploy.docker.gpus: none."
                if "device driver" in str(exc)
                else None,
            ) from None
        return ctx.new_state(
            self.name,
            name=ctx.config.deploy.name,
            container_id=container.id,
            container_name=name,
            image=tag,
        )

    def _get(self, state: DeploymentState):
        from docker.errors import NotFound

        try:
            return self.client.containers.get(state.container_id or state.container_name)
        except NotFound:
            return None

    def _remove_if_exists(self, name: str) -> None:
        from docker.errors import NotFound

        try:
            old = self.client.containers.get(name)
        except NotFound:
            return
        old.remove(force=True)

    def liveness(self, state: DeploymentState) -> Liveness:
        container = self._get(state)
        if container is None:
            return Liveness(False, f"container {state.container_name} is gone")
        container.reload()
        health = (container.attrs.get("State", {}).get("Health") or {}).get("Status", "none")
        if container.status != "running":
            code = container.attrs.get("State", {}).get("ExitCode")
            return Liveness(False, f"container {container.name} is {container.status} (exit code {code})")
        return Liveness(True, f"container {container.name} running, docker health {health}")

    def owns_port(self, state: DeploymentState, port: int) -> bool:
        # Host networking: the container's processes are ours when it runs on that port.
        return port == state.port and self.liveness(state).alive

    def join(self, state: DeploymentState) -> None:
        from docker.errors import APIError

        container = self._get(state)
        try:
            if container is None:
                raise APIError("gone")
            container.kill(signal="SIGUSR1")
        except APIError:
            raise EnvironmentFailure(
                f"the new container {state.container_name} stopped before it took the port over"
            ) from None

    def retire(self, state: DeploymentState) -> None:
        container = self._get(state)
        if container is None:
            return
        container.stop(timeout=STOP_TIMEOUT_S)  # SIGTERM: it drains, then exits
        previous = f"{state.name}-previous"
        if container.name != previous:
            self._remove_if_exists(previous)
            container.rename(previous)

    def promote(self, state: DeploymentState) -> DeploymentState:
        container = self._get(state)
        if container is not None and container.name != state.name:
            self._remove_if_exists(state.name)  # the old one is `-previous` by now
            container.rename(state.name)
        return replace(state, container_name=state.name)

    def discard(self, state: DeploymentState) -> None:
        container = self._get(state)
        if container is not None:
            container.remove(force=True)

    def tidy(self, live: DeploymentState) -> Tidied:
        from docker.errors import DockerException, ImageNotFound
        from requests import RequestException

        # The deployment is live and healthy whatever happens here: an engine error is reported
        # with the result, never raised.
        try:
            used = {c.attrs.get("ImageID") for c in self.client.containers.list(all=True)}
            images = self.client.images.list(name=IMAGE_REPO, filters={"label": BUILT_LABEL})
        except (DockerException, RequestException) as exc:
            return Tidied((), f"could not list the old images: {redact(str(exc))[:200]}")
        removed, problem = [], None
        for image in images:
            if image.id in used or live.image in image.tags:  # any container's, stopped ones too
                continue
            for tag in filter(_is_built_tag, image.tags):
                try:
                    self.client.images.remove(tag)  # no force: should a container appear, it stays
                except ImageNotFound:
                    continue
                except (DockerException, RequestException) as exc:
                    problem = f"could not remove {tag}: {redact(str(exc))[:200]}"
                    continue
                removed.append(tag)
        return Tidied(tuple(removed), problem)

    def stop(self, state: DeploymentState) -> None:
        container = self._get(state)
        if container is not None:
            if container.status == "running":
                container.stop(timeout=STOP_TIMEOUT_S)  # it drains first
            container.remove(force=True)

    def logs(self, state: DeploymentState, lines: int = 40) -> str:
        container = self._get(state)
        if container is None:
            return ""
        return redact(container.logs(tail=lines).decode("utf-8", "replace"))

    def follow(self, state: DeploymentState, lines: int = 40):
        container = self._get(state)
        if container is None:
            raise EnvironmentFailure(f"container {state.container_name} is gone; no logs to follow")
        pending = ""
        for chunk in container.logs(stream=True, follow=True, tail=lines):
            pending += chunk.decode("utf-8", "replace")
            *complete, pending = pending.split("\n")
            for line in complete:
                yield redact(line)

    def matches(self, state: DeploymentState) -> tuple[bool, str]:
        container = self._get(state)
        if container is None:
            return False, f"container {state.container_name} recorded in the state file is gone"
        if state.container_id and container.id != state.container_id:
            return False, f"container {container.name} is not the recorded one ({state.container_id[:12]})"
        live = self.liveness(state)
        return live.alive, live.detail
