"""Model backends: `transformers` (real weights), `openai` (an upstream), `simulated` (load tests only)."""

from __future__ import annotations

from ...errors import ConfigError
from .base import BackendSettings, GenerationRequest, GenerationResult, ThreadedBackend

THREADED = ("transformers", "simulated")  # run on a model thread, in a Dask worker or inline
UPSTREAM = ("openai",)  # async HTTP from the gateway process

__all__ = ["BackendSettings", "GenerationRequest", "GenerationResult", "make_threaded_backend"]


def make_threaded_backend(settings: BackendSettings) -> ThreadedBackend:
    if settings.backend == "simulated":
        from .simulated import SimulatedBackend

        return SimulatedBackend(settings)
    if settings.backend == "transformers":
        from .hf_transformers import TransformersBackend

        return TransformersBackend(settings)
    raise ConfigError(
        f"backend {settings.backend!r} does not run on a worker", field=f"models.{settings.model}"
    )
