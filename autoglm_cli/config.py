"""The `config.yaml` schema, its loader and the environment overrides.

Resolution, first match wins:

1. `--config PATH` on the command line;
2. `$AUTOGLM_CONFIG`;
3. `./autoglm.yaml` when it exists;
4. the built-in defaults below.

On top of the file, `AUTOGLM_<SECTION>__<FIELD>=value` environment variables
override single fields (values are parsed as YAML scalars), e.g.
`AUTOGLM_GATEWAY__PORT=9000`. Command-line options override both.

Every section is a frozen dataclass; `_coerce` converts YAML into them from the
type hints, so adding a field is one line. Validation errors name the file, the
line and the dotted field; unknown keys are kept out and reported as warnings.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

DEFAULT_CONFIG_NAME = "autoglm.yaml"
ENV_CONFIG = "AUTOGLM_CONFIG"
ENV_OVERRIDE_PREFIX = "AUTOGLM_"
_T = typing.TypeVar("_T")
# Bad input stops early with a clear error: a real config is a few KiB and 4 or 5 levels deep.
MAX_CONFIG_BYTES = 1024 * 1024
MAX_CONFIG_DEPTH = 32
MAX_CONFIG_VALUES = 100_000  # after anchors and aliases are expanded


class Duration(float):
    """Seconds, written in YAML as `300s`, `5m`, `1h`, `250ms` or a plain number."""


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> Duration:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, (int, float)):
        return Duration(value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError(f"expected a duration such as 30s, 5m or 1h, got {value!r}")
    return Duration(float(match.group(1)) * _DURATION_UNIT[match.group(2)])


# --- the schema -------------------------------------------------------------


@dataclass(frozen=True)
class ModelPool:
    default: str = "chatglm3-6b"
    backup: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One servable model: where its weights come from and how it runs."""

    source: str = ""  # hub repo id, https URL or local directory
    revision: str = "main"
    backend: Literal["transformers", "openai", "simulated"] = "transformers"
    size_gb: float | None = None  # expected size on disk, for env-check and timeouts
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectionPool:
    max_connections: int = 100
    idle_timeout: Duration = Duration(300)
    max_idle_connections: int = 20


@dataclass(frozen=True)
class Weights:
    cache_dir: str | None = None  # default: HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub
    endpoints: list[str] = field(default_factory=list)  # tried in order
    jobs: int = 4
    connections: int | None = None  # byte ranges per file at once (None: 8 for files over 64 MiB)
    stall_timeout: Duration = Duration(30)  # no byte for this long: the next endpoint takes over


@dataclass(frozen=True)
class Workers:
    min: int = 1
    max: int = 4
    count: int | None = None  # fixed pool size (static scheduler)
    # "dask": worker processes (a LocalCluster, or `scheduler_address`);
    # "inline": nodes run in the gateway process (simulated load tests, tiny setups).
    engine: Literal["dask", "inline"] = "dask"
    scheduler_address: str | None = None  # an existing Dask scheduler (serve --dask-scheduler)
    concurrency: int = 1  # requests the gateway sends one node at once (at least the node's max_batch)
    # The transformers backend runs a node's requests in one continuous batch: at most this many
    # sequences, holding at most `max_batch_tokens` KV-cache tokens (None: what fits the device).
    max_batch: int = 32
    max_batch_tokens: int | None = None
    # GPUs per worker process: "auto" gives each worker its own GPU (or GPU set) when the host has
    # several (CUDA_VISIBLE_DEVICES per worker); "none" leaves it alone; "0,1,2,3": share out these.
    gpus: str = "auto"
    gpus_per_worker: int = 1
    control_interval: Duration = Duration(1)  # the scheduler's control tick
    memory_limit: str = "auto"  # per worker process, Dask syntax ("4GiB", "auto")
    dashboard: bool = False  # Dask's dashboard for the embedded cluster
    # How the dynamic scheduler picks a node: "least-time" (least expected completion time),
    # "cache-aware" (prefix cache + prefill backlog, for batching nodes), "auto" (cache-aware on
    # nodes that batch, least-time on the others); the "-baseline" ones are old benchmark anchors.
    routing: Literal["auto", "least-time", "cache-aware", "random-baseline", "round-robin-baseline"] = "auto"
    # When serve does not own the cluster (--dask-scheduler): a command run on every change of the
    # desired worker count, e.g. "kubectl scale deploy/autoglm-worker --replicas={n}" ({n}: the count).
    scale_hook: str | None = None
    scale_hook_timeout: Duration = Duration(30)


VLLM_COMMAND = [
    "vllm", "serve", "{source}", "--host", "{host}", "--port", "{port}",
    "--served-model-name", "{model}", "--revision", "{revision}",
]  # fmt: skip
SGLANG_COMMAND = [
    "python", "-m", "sglang.launch_server", "--model-path", "{source}", "--host", "{host}",
    "--port", "{port}", "--served-model-name", "{model}", "--revision", "{revision}",
]  # fmt: skip


@dataclass(frozen=True)
class Engines:
    """Inference engines as nodes: signal polling (gateway) and managed engines (`worker --engine`)."""

    poll_interval: Duration = Duration(0.5)  # how often the gateway reads each engine's /metrics
    # `autoglm worker --engine vllm|sglang`: one engine per GPU set, on base_port, base_port + 1, ...
    gpus: list[str] = field(default_factory=lambda: ["0"])  # GPU sets, e.g. ["0", "1"] or ["0,1", "2,3"]
    host: str = "127.0.0.1"
    base_port: int = 8001
    health_path: str = "/health"
    ready_timeout: Duration = Duration(1800)  # longest an engine may take to answer its health check
    restart_base: Duration = Duration(1)  # first wait before a restart; doubles per quick death
    restart_max: Duration = Duration(60)
    # Command lines; {source} {model} {revision} {host} {port} {gpus} are filled in per engine.
    vllm: list[str] = field(default_factory=lambda: list(VLLM_COMMAND))
    sglang: list[str] = field(default_factory=lambda: list(SGLANG_COMMAND))
    extra_args: list[str] = field(default_factory=list)  # appended to either command


@dataclass(frozen=True)
class Autoscale:
    """The dynamic scheduler's knobs (`scheduler: dynamic` or `priority-based`); see docs/architecture.md."""

    target_utilisation: float = 0.8  # size the pool so nodes are this busy
    scale_up_utilisation: float = 1.5  # grow on the forecast alone only past this (a queue always grows it)
    stable_window: Duration = Duration(60)  # no scale-down within this long of a scale-up
    release_window: Duration = Duration(3)  # a collapse in demand this long gives capacity back early
    drain_time: Duration = Duration(10)  # when tasks queue, size the pool to clear them within this
    forecaster: Literal["ewma", "holt", "last-value"] = "ewma"
    forecast_alpha: float = 0.3  # smoothing weight (ewma, holt)


@dataclass(frozen=True)
class Gateway:
    host: str = "127.0.0.1"
    port: int = 8000
    auth: bool = True
    keys_file: str | None = None  # default: $XDG_CONFIG_HOME/autoglm/keys.json
    max_queue: int = 1024  # requests waiting for a node; more get 503
    queue_timeout: Duration = Duration(120)  # longest a request waits for a node
    request_timeout: Duration = Duration(600)  # longest one generation may run on a node
    max_attempts: int = 3  # nodes tried per request when nodes die under it
    task_ttl: Duration = Duration(3600)  # how long a finished /v1/tasks result stays readable
    # scheduler: priority-based: a queued task gains one priority level per this long (low never starves)
    priority_aging: Duration = Duration(10)
    shutdown_grace: Duration = Duration(10)  # Ctrl-C / SIGTERM: in-flight requests may finish within this
    max_body_bytes: int = 4 * 1024 * 1024  # a larger request body is refused with 413 before it is read
    header_timeout: Duration = Duration(10)  # a connection whose request headers are not in by then is closed


@dataclass(frozen=True)
class DockerDeploy:
    image: str | None = None  # use this image as is instead of building one
    base_image: str | None = None  # the Dockerfile's BASE_IMAGE (default: its official slim Python)
    extras: list[str] = field(default_factory=list)  # e.g. ["transformers"] for the torch backend
    restart: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    gpus: Literal["auto", "all", "none"] = "auto"  # auto: request GPUs when the host has some


@dataclass(frozen=True)
class SystemdDeploy:
    user: str | None = None  # User= of the unit (default: DynamicUser=yes)
    # The Python of the environment autoglm is installed in where the unit runs (e.g.
    # /opt/autoglm/bin/python); default: the one running `deploy` (rendering for this machine).
    python: str | None = None
    unit_dir: str = "/etc/systemd/system"


@dataclass(frozen=True)
class Deploy:
    target: Literal["local", "docker", "systemd"] = "local"
    state_dir: str | None = None  # default: ./.autoglm
    name: str = "autoglm"  # the service, container and unit name
    env_file: str | None = None  # secrets (HF_TOKEN, ...) passed at run time, never baked in
    health_timeout: Duration = Duration(60)  # the health gate's budget for a small model ...
    health_timeout_per_gb: Duration = Duration(20)  # ... plus this per GB of weights (slow loads)
    repo: str | None = None  # redeploy's clone step: the service's git remote
    checkout: str | None = None  # ... and where its checkout lives
    branch: str = "main"
    monitoring_dir: str | None = None  # --with-monitoring: the Prometheus/Grafana kit written here
    docker: DockerDeploy = field(default_factory=DockerDeploy)
    systemd: SystemdDeploy = field(default_factory=SystemdDeploy)


@dataclass(frozen=True)
class EnvCheckConfig:
    # Binary names, optionally with a version specifier: "git>=2.30".
    required_binaries: list[str] = field(default_factory=lambda: ["git"])
    recommended_binaries: list[str] = field(
        default_factory=lambda: ["docker", "kubectl", "helm", "nvidia-smi"]
    )
    endpoints: list[str] = field(default_factory=list)  # host:port or URLs; unreachable = warn
    required_endpoints: list[str] = field(default_factory=list)  # unreachable = fail
    ports: list[int] = field(default_factory=list)  # extra ports to check (gateway.port always)
    timeout: Duration = Duration(2)  # per network probe: DNS + TCP connect together
    command_timeout: Duration = Duration(10)  # per `tool --version`, nvidia-smi, torch probe
    require_gpu: bool = False  # no NVIDIA GPU (or torch cannot see it) fails instead of informing
    min_memory_gb: float | None = None  # total RAM below this warns
    min_cpus: int | None = None  # fewer logical CPUs than this warns


@dataclass(frozen=True)
class Retry:
    """Backoff for network calls (`autoglm_cli.retry`): tries in all, first wait, cap on one wait."""

    tries: int = 3
    base: Duration = Duration(1)
    max_delay: Duration = Duration(30)


@dataclass(frozen=True)
class Clone:
    # Local branch names outside these fnmatch patterns are reported as warnings.
    branch_conventions: list[str] = field(
        default_factory=lambda: ["main", "feature/*", "bugfix/*", "hotfix/*", "release/*"]
    )


@dataclass(frozen=True)
class CacheMigration:
    """One row of the `migrate-cache` mapping table: old prefix -> new template."""

    old: str
    new: str
    kind: Literal["hf", "dir"] = "hf"  # hf: hub cache + trust_remote_code modules; dir: files under `root`
    root: str | None = None  # the directory cache (kind dir); --root overrides


@dataclass(frozen=True)
class Config:
    model_pool: ModelPool = field(default_factory=ModelPool)
    # dynamic (ours), static (legacy round robin), priority-based (dynamic + aging priorities), or
    # a baseline to compare with (runtime/scheduler/baselines.py)
    scheduler: Literal[
        "static",
        "dynamic",
        "priority-based",
        "round-robin",
        "random",
        "least-requests",
        "least-tokens",
        "p2c",
        "prefix-hash",
    ] = "static"
    dependencies: list[str] = field(default_factory=list)
    connection_pool: ConnectionPool = field(default_factory=ConnectionPool)
    read_timeout: Duration = Duration(60)
    log_level: Literal["DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL"] = "WARN"
    log_format: Literal["text", "json"] = "text"  # json: one object per line (docs/serve.md, "Logs")
    log_file: str | None = None  # the service logs here instead of stderr (serve --log-file), rotated:
    log_max_bytes: int = 50 * 1024 * 1024  # ... when it reaches this size,
    log_backups: int = 5  # ... keeping this many old files (FILE.1 .. FILE.5)
    moves: dict[str, str] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    weights: Weights = field(default_factory=Weights)
    workers: Workers = field(default_factory=Workers)
    autoscale: Autoscale = field(default_factory=Autoscale)
    gateway: Gateway = field(default_factory=Gateway)
    deploy: Deploy = field(default_factory=Deploy)
    env_check: EnvCheckConfig = field(default_factory=EnvCheckConfig)
    cache_migrations: list[CacheMigration] = field(default_factory=list)
    retry: Retry = field(default_factory=Retry)
    clone: Clone = field(default_factory=Clone)
    engines: Engines = field(default_factory=Engines)

    # Where the config came from (None: defaults) and what was odd about it.
    source: str | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)


# --- loading ----------------------------------------------------------------


class _LineDict(dict):
    """A mapping that remembers the line of each key (1-based)."""

    key_lines: dict[Any, int]
    line: int | None = None


class _BadYaml(Exception):
    """Internal: raised inside the YAML loader, turned into a ConfigError with the file name."""

    def __init__(self, message: str, line: int, remedy: str | None = None) -> None:
        super().__init__(message)
        self.line, self.remedy = line, remedy


def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            try:
                if self.depth > MAX_CONFIG_DEPTH:
                    raise _BadYaml(
                        f"nested more than {MAX_CONFIG_DEPTH} levels deep",
                        self.peek_event().start_mark.line + 1,
                        "A config is a few levels of sections; check the brackets.",
                    )
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    def construct_mapping(loader: Loader, node: Any) -> _LineDict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` keys are overridden by the mapping's own, as YAML says
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if _hashable(key) and key in seen:
                raise _BadYaml(
                    f"duplicate key {key!r}: first on line {seen[key]}, again on line {line}",
                    line,
                    "Keep one of them: YAML would silently use the last one.",
                )
            if _hashable(key):
                seen[key] = line
        loader.flatten_mapping(node)
        mapping = _LineDict()
        mapping.key_lines = {}
        mapping.line = node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            mapping[key] = loader.construct_object(value_node, deep=True)
            mapping.key_lines[key] = key_node.start_mark.line + 1
        return mapping

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return Loader


def _hashable(key: Any) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


class _Context:
    """Where we are while coercing: the file, for messages, and collected warnings."""

    def __init__(self, file: str | None) -> None:
        self.file = file
        self.warnings: list[str] = []
        self.values = 0  # coerced so far: aliases can make a small file expand enormously

    def count(self, path: str, line: int | None) -> None:
        self.values += 1
        if self.values > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"more than {MAX_CONFIG_VALUES} values once anchors and aliases are expanded",
                file=self.file,
                line=line,
                field=path or None,
                remedy="A config holds a few hundred values; check the anchors (&name) and aliases (*name).",
            )

    def error(self, path: str, line: int | None, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=line, field=path or None)

    def warn(self, path: str, line: int | None, message: str) -> None:
        where = ":".join(str(p) for p in (self.file, line) if p is not None)
        self.warnings.append(f"{where + ': ' if where else ''}{path}: {message}")


def _line_of(mapping: Any, key: Any) -> int | None:
    if isinstance(mapping, _LineDict):
        return mapping.key_lines.get(key, mapping.line)
    return None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str, line: int | None, ctx: _Context) -> Any:
    ctx.count(path, line)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        last_error: ConfigError | None = None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, path, line, ctx)
            except ConfigError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error
    if tp is Any:
        _count_nested(value, path, line, ctx)  # free-form (model options): still bounded
        return value
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ctx.error(path, line, f"{value!r} is not one of {choices}")
        return value
    if dataclasses.is_dataclass(tp):
        return _coerce_dataclass(value, tp, path, line, ctx)
    if origin is list:
        if not isinstance(value, list):
            raise ctx.error(path, line, f"expected a list, got {type(value).__name__}")
        (item_tp,) = args
        return [_coerce(v, item_tp, f"{path}[{i}]", line, ctx) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ctx.error(path, line, f"expected a mapping, got {type(value).__name__}")
        key_tp, value_tp = args
        return {
            _coerce(k, key_tp, path, _line_of(value, k), ctx): _coerce(
                v, value_tp, f"{path}.{k}", _line_of(value, k), ctx
            )
            for k, v in value.items()
        }
    if tp is Duration:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ctx.error(path, line, str(exc)) from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ctx.error(path, line, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.error(path, line, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ctx.error(path, line, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ctx.error(path, line, f"expected a string, got {type(value).__name__}")
        return str(value)
    raise TypeError(f"unsupported schema type {_type_name(tp)} at {path}")  # a bug in the schema


def _count_nested(value: Any, path: str, line: int | None, ctx: _Context) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        ctx.count(path, line)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _coerce_dataclass(value: Any, cls: type, path: str, line: int | None, ctx: _Context) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ctx.error(path, line, f"expected a mapping, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.compare}
    kwargs: dict[str, Any] = {}
    for key, raw in value.items():
        key_path = f"{path}.{key}" if path else str(key)
        key_line = _line_of(value, key)
        if key not in fields:
            known = ", ".join(sorted(fields))
            ctx.warn(key_path, key_line, f"unknown key, ignored (known keys: {known})")
            continue
        kwargs[key] = _coerce(raw, hints[key], key_path, key_line, ctx)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ctx.error(path, line, f"missing required key(s): {', '.join(missing)}")
    return cls(**kwargs)


def _apply_env_overrides(raw: dict, environ: typing.Mapping[str, str]) -> dict:
    for name, text in environ.items():
        if not name.startswith(ENV_OVERRIDE_PREFIX) or "__" not in name:
            continue
        import yaml  # only when an override is set: yaml costs ~15 ms of every start

        parts = name[len(ENV_OVERRIDE_PREFIX) :].lower().split("__")
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = yaml.safe_load(text) if text else ""
    return raw


def resolve_config_path(explicit: str | os.PathLike | None, environ=os.environ) -> Path | None:
    """The config file to read, by the documented precedence (None: defaults)."""
    if explicit:
        return Path(explicit)
    if environ.get(ENV_CONFIG):
        return Path(environ[ENV_CONFIG])
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def load_yaml(text: str, *, file: str | None = None) -> dict:
    """The config file's YAML as mappings that remember each key's line (`_LineDict`).

    Refuses, as a `ConfigError` naming the file and line: invalid YAML, duplicate keys,
    more than `MAX_CONFIG_BYTES` or `MAX_CONFIG_DEPTH` levels, a top level that is not a mapping.
    """
    _check_size(len(text.encode("utf-8", "surrogateescape")), file)
    if not text.strip():
        return {}
    import yaml

    try:
        raw = yaml.load(text, Loader=_yaml_loader())
    except _BadYaml as bad:
        raise ConfigError(str(bad), file=file, line=bad.line, remedy=bad.remedy) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML: {problem}", file=file, line=line) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping of sections", file=file, line=1)
    return raw


def _check_size(size: int, file: str | None) -> None:
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"the config is {size} bytes; the limit is {MAX_CONFIG_BYTES // 1024} KiB",
            file=file,
            remedy="Point --config at autoglm's YAML config (a few KiB), not at another file.",
        )


def parse_config(text: str, *, file: str | None = None, environ=None) -> Config:
    """Parse YAML text into a validated `Config` (environment overrides applied)."""
    raw = load_yaml(text, file=file)
    raw = _apply_env_overrides(raw, os.environ if environ is None else environ)
    ctx = _Context(file)
    config = _coerce_dataclass(raw, Config, "", 1, ctx)
    return dataclasses.replace(config, source=file, warnings=tuple(ctx.warnings))


def load_config(path: str | os.PathLike | None = None, *, environ=None) -> Config:
    """Load the config by the documented precedence; defaults when there is none."""
    env = os.environ if environ is None else environ
    resolved = resolve_config_path(path, env)
    if resolved is None:
        return parse_config("", environ=env)
    try:
        text = read_config_text(resolved)
    except FileNotFoundError:
        raise ConfigError(
            "config file not found",
            file=str(resolved),
            remedy="Pass an existing file with --config, or unset AUTOGLM_CONFIG.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file: {exc}", file=str(resolved)) from None
    return parse_config(text, file=str(resolved), environ=env)


def read_config_text(path: Path) -> str:
    """The file's text, refusing a file over `MAX_CONFIG_BYTES` before reading it whole."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            size = os.fstat(handle.fileno()).st_size
            _check_size(max(size, len(data)), str(path))
    return data.decode("utf-8")


# --- overrides from the command line ---------------------------------------------


def with_overrides(config: _T, overrides: typing.Mapping[str, Any], *, none_means_unset: bool = True) -> _T:
    """A copy of `config` with dotted fields replaced, e.g. `{"gateway.port": 9000}`.

    The one way a command-line option (or a deploy target) overrides a config field. A
    value of None means "not given" and leaves the field as it is, unless
    `none_means_unset` is False (then the field becomes None). Raises KeyError for a
    field the schema does not have (a bug in the caller).
    """
    changes: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if value is None and none_means_unset:
            continue
        head, _, rest = key.partition(".")
        if head not in {f.name for f in dataclasses.fields(config)}:
            raise KeyError(f"no config field {key!r}")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            changes[head] = value
    for head, fields in nested.items():
        changes[head] = with_overrides(getattr(config, head), fields, none_means_unset=none_means_unset)
    return dataclasses.replace(config, **changes) if changes else config
