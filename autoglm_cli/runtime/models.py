"""The model catalogue `serve` works from: config's `models` + `model_pool`, checked once."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .backends import THREADED, UPSTREAM
from .backends.base import BackendSettings

_LOG_LEVELS = {"WARN": "WARNING"}


def python_log_level(config) -> str:
    return _LOG_LEVELS.get(config.log_level, config.log_level)


def model_settings(config, name: str) -> BackendSettings:
    spec = config.models.get(name)
    if spec is None:
        known = ", ".join(sorted(config.models)) or "none"
        raise ConfigError(
            f"model {name!r} is not defined under `models` (defined: {known})",
            file=config.source,
            field="models",
            remedy=f"Add `models: {{{name}: {{backend: ..., source: ...}}}}` or fix `model_pool`.",
        )
    pool = config.connection_pool
    return BackendSettings(
        model=name,
        backend=spec.backend,
        source=spec.source,
        revision=spec.revision,
        options=dict(spec.options),
        cache_dir=config.weights.cache_dir,
        read_timeout=float(config.read_timeout),
        max_connections=pool.max_connections,
        max_idle_connections=pool.max_idle_connections,
        idle_timeout=float(pool.idle_timeout),
        log_level=python_log_level(config),
        retry_tries=config.retry.tries,
        retry_base=float(config.retry.base),
        retry_max_delay=float(config.retry.max_delay),
        max_batch=config.workers.max_batch,
        max_batch_tokens=config.workers.max_batch_tokens,
    )


@dataclass(frozen=True)
class Catalogue:
    default: str
    backup: str | None
    models: dict[str, BackendSettings]

    @property
    def worker_models(self) -> list[str]:
        """Models that run on workers, default first then backup: the order workers are given out in."""
        order = [self.default] + ([self.backup] if self.backup else []) + sorted(self.models)
        seen: list[str] = []
        for name in order:
            if name not in seen and self.models[name].backend in THREADED:
                seen.append(name)
        return seen

    @property
    def upstream_models(self) -> list[str]:
        return [n for n, s in self.models.items() if s.backend in UPSTREAM]


def load_catalogue(config) -> Catalogue:
    """Every model resolved; the default (and backup) must be defined."""
    if not config.models:
        raise ConfigError(
            "no models defined",
            file=config.source,
            field="models",
            remedy="Start from examples/simulated.yaml, examples/transformers.yaml or examples/upstream.yaml",
        )
    models = {name: model_settings(config, name) for name in config.models}
    default = config.model_pool.default
    backup = config.model_pool.backup
    for role, name in (("default", default), ("backup", backup)):
        if name is not None and name not in models:
            raise ConfigError(
                f"model_pool.{role} is {name!r}, which is not defined under `models`",
                file=config.source,
                field=f"model_pool.{role}",
                remedy=f"Define it under `models`, or set model_pool.{role} to one of: {', '.join(models)}.",
            )
    for name, settings in models.items():
        if settings.backend == "openai" and not (settings.source or settings.options.get("endpoints")):
            raise ConfigError(
                "the openai backend needs the upstream's base URL in `source` (or options.endpoints)",
                file=config.source,
                field=f"models.{name}.source",
            )
        if settings.backend == "transformers" and not settings.source:
            raise ConfigError(
                "the transformers backend needs `source` (a hub repo id or a directory)",
                file=config.source,
                field=f"models.{name}.source",
            )
    return Catalogue(default=default, backup=backup, models=models)
