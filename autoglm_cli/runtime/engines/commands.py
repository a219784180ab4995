"""An engine's command line, from the config's `engines` section (docs/config.md).

One engine per GPU set (`engines.gpus`, or `--gpus`), each on its own port (`base_port`,
`base_port + 1`, ...), with `CUDA_VISIBLE_DEVICES` set to its GPUs. Placeholders in the
command template: `{source}` (the weights: a hub repo id or a local directory), `{model}`
(the name the engine serves it under: what the gateway sends as `model`), `{revision}`,
`{host}`, `{port}`, `{gpus}` and `{tp}` (how many GPUs the set has, for tensor parallelism).
Which model: a `transformers` model serves its `source` under its own name; an `openai`
model (the gateway's view of an engine) serves `options.weights`, else `options.model`,
under `options.model` (default: its name). Engines never download: `HF_HUB_OFFLINE=1`
(`autoglm fetch-weights` fills the cache first), `HF_HUB_CACHE` from `weights.cache_dir`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError, UsageError

KINDS = ("vllm", "sglang")


@dataclass(frozen=True)
class EngineLaunch:
    """One engine process to run and supervise."""

    index: int
    kind: str
    model: str  # the served name
    source: str
    gpus: str
    host: str
    port: int
    argv: tuple[str, ...]
    env: dict[str, str]
    health_url: str

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def label(self) -> str:
        return f"{self.kind}[{self.index}] gpus={self.gpus} port={self.port}"


def fill(template: list[str], values: dict[str, str]) -> list[str]:
    """The template with `{name}` placeholders replaced (other braces, e.g. JSON, stay as they are)."""
    out = []
    for arg in template:
        for name, value in values.items():
            arg = arg.replace("{" + name + "}", value)
        out.append(arg)
    return out


def weights_and_name(config, model: str) -> tuple[str, str, str]:
    """(weights source, served name, revision) of `model` for an engine."""
    spec = config.models.get(model)
    if spec is None:
        known = ", ".join(sorted(config.models)) or "none"
        raise ConfigError(f"model {model!r} is not defined under `models` (defined: {known})", field="models")
    if spec.backend == "transformers":
        return spec.source, model, spec.revision
    if spec.backend == "openai":
        served = str(spec.options.get("model") or model)
        return str(spec.options.get("weights") or served), served, spec.revision
    raise UsageError(
        f"model {model!r} uses the {spec.backend} backend: an engine cannot serve it",
        remedy="Give a model with backend transformers (its weights) or openai (the engine's endpoint).",
    )


def engine_launches(
    config,
    kind: str,
    model: str,
    *,
    gpus: tuple[str, ...] = (),
    host: str | None = None,
    base_port: int | None = None,
) -> list[EngineLaunch]:
    if kind not in KINDS:
        raise UsageError(f"unknown engine {kind!r}", remedy=f"Use one of: {', '.join(KINDS)}.")
    engines = config.engines
    template = list(getattr(engines, kind)) + list(engines.extra_args)
    if not template:
        raise ConfigError(f"engines.{kind} is empty", field=f"engines.{kind}")
    source, served, revision = weights_and_name(config, model)
    sets = list(gpus or engines.gpus)
    if not sets:
        raise UsageError("no GPU set given", remedy='Set engines.gpus (e.g. ["0", "1"]) or pass --gpus.')
    host = host or engines.host
    port0 = base_port if base_port is not None else engines.base_port
    launches = []
    for index, gpu_set in enumerate(sets):
        port = port0 + index
        values = {
            "source": source,
            "model": served,
            "revision": revision,
            "host": host,
            "port": str(port),
            "gpus": gpu_set,
            "tp": str(len([g for g in gpu_set.split(",") if g.strip()])),
        }
        env = {"CUDA_VISIBLE_DEVICES": gpu_set, "HF_HUB_OFFLINE": "1"}
        if config.weights.cache_dir:
            env["HF_HUB_CACHE"] = str(config.weights.cache_dir)
        probe_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        launches.append(
            EngineLaunch(
                index=index,
                kind=kind,
                model=served,
                source=source,
                gpus=gpu_set,
                host=host,
                port=port,
                argv=tuple(fill(template, values)),
                env=env,
                health_url=f"http://{probe_host}:{port}{engines.health_path}",
            )
        )
    return launches
