"""`ModelActor`: the Dask actor through which the gateway reaches a model on a worker.

One actor per worker. It delegates to the worker's `ModelHost` for its model,
which either the worker plugin started loading when the worker came up
(`autoglm worker --model NAME`) or the actor creates on first use. Its methods
are coroutines, so Dask runs them on the worker's event loop concurrently
(see `host.py`); constructing it is cheap, loading happens in `load()`.
"""

from __future__ import annotations

from ..backends.base import BackendSettings, GenerationRequest
from .host import ModelHost
from .registry import host_for


class ModelActor:
    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self._host: ModelHost | None = None

    @property
    def host(self) -> ModelHost:
        if self._host is None:
            self._host = host_for(self.settings)
        return self._host

    async def load(self) -> dict:
        return await self.host.load()

    async def status(self) -> dict:
        return self.host.status()

    async def generate(self, request: GenerationRequest) -> dict:
        return await self.host.generate(request)

    async def start_stream(self, request: GenerationRequest, channel: str | None = None) -> None:
        await self.host.start_stream(request, channel)

    async def pull_channel(self, channel: str, ids: list[str], wait: float = 1.0) -> dict:
        return await self.host.pull_channel(channel, ids, wait)

    async def pull(self, request_id: str, wait: float = 1.0) -> dict:
        return await self.host.pull(request_id, wait)

    async def cancel(self, request_id: str) -> bool:
        return await self.host.cancel(request_id)
