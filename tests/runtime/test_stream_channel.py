"""Streams of one node share one long-poll (`pull_channel`): each gets all of its own text, and a
stream that is still starting while others stream is neither lost nor taken for a lost one."""

from __future__ import annotations

import asyncio

from autoglm_cli.runtime.backends.base import BackendSettings, GenerationRequest
from autoglm_cli.runtime.workers.handles import HostHandle
from autoglm_cli.runtime.workers.host import ModelHost

WORDS = "simulated output from the autoglm simulated backend ."


def expected(tokens: int) -> str:
    words = WORDS.split()
    return " ".join(words[i % len(words)] for i in range(tokens))


class GatedStart:
    """A ModelHost whose `start_stream` for one request waits until the test opens the gate."""

    def __init__(self, host: ModelHost, gated: str) -> None:
        self.host, self.gated, self.gate = host, gated, asyncio.Event()

    async def start_stream(self, request, channel=None):
        if request.id == self.gated:
            await self.gate.wait()
        await self.host.start_stream(request, channel)

    def __getattr__(self, name):
        return getattr(self.host, name)


def request(rid: str, tokens: int) -> GenerationRequest:
    return GenerationRequest(id=rid, model="sim", prompt="x", max_tokens=tokens)


def test_a_stream_that_starts_while_others_stream_gets_all_its_text():
    async def run():
        settings = BackendSettings(
            model="sim", backend="simulated", options={"c": 0.005, "output_tokens": 200}
        )
        host = ModelHost(settings)
        await host.load()
        target = GatedStart(host, gated="late")
        handle = HostHandle(target, timeout=30)
        pieces: dict[str, list[str]] = {"early": [], "late": [], "other": []}
        early = asyncio.ensure_future(handle.stream(request("early", 120), pieces["early"].append))
        while not pieces["early"]:
            await asyncio.sleep(0.01)
        late = asyncio.ensure_future(handle.stream(request("late", 20), pieces["late"].append))
        other = asyncio.ensure_future(handle.stream(request("other", 30), pieces["other"].append))
        await other  # the poller went round several times while "late" was still starting
        target.gate.set()
        results = {"early": await early, "late": await late}
        host.close()
        return pieces, results

    pieces, results = asyncio.run(run())
    for rid, tokens in (("early", 120), ("late", 20), ("other", 30)):
        assert "".join(pieces[rid]) == expected(tokens), rid
    assert results["late"].text == expected(20) and results["early"].completion_tokens == 120
