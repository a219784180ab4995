"""SIMULATED backend: no model at all. For benchmarks and load tests only.

It answers with the words "simulated output from the autoglm simulated backend"
and takes as long as a real node would by the linear model that fits LLM serving
well enough for scheduling experiments:

    service time = a + b * prompt_tokens + c * generated_tokens     (seconds)

Tokens are whitespace-separated words. Options (`models.NAME.options`): `a`, `b`,
`c` (seconds), `output_tokens` (tokens generated when `max_tokens` allows, default
16), `load_seconds` (a pretend load time). Never use it to serve users: the
`/v1/models` entry says `owned_by: autoglm-simulated`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .base import BackendSettings, Emit, GenerationRequest, GenerationResult, StopFilter, option

WORDS = ["simulated", "output", "from", "the", "autoglm", "simulated", "backend", "."]


def count_tokens(text: str) -> int:
    return len(text.split())


class SimulatedBackend:
    def __init__(
        self,
        settings: BackendSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        opts, name = settings.options, settings.model
        self.a = option(opts, "a", 0.0, float, name)
        self.b = option(opts, "b", 0.0, float, name)
        self.c = option(opts, "c", 0.0, float, name)
        self.output_tokens = option(opts, "output_tokens", 16, int, name)
        self.load_seconds = option(opts, "load_seconds", 0.0, float, name)
        self.sleep, self.clock = sleep, clock

    def load(self) -> None:
        if self.load_seconds:
            self.sleep(self.load_seconds)

    def close(self) -> None:
        pass

    def prompt_tokens(self, request: GenerationRequest) -> int:
        if request.kind == "chat":
            return sum(count_tokens(str(m.get("content", ""))) for m in request.messages or [])
        return count_tokens(request.prompt or "")

    def service_time(self, prompt_tokens: int, generated_tokens: int) -> float:
        return self.a + self.b * prompt_tokens + self.c * generated_tokens

    def generate(
        self, request: GenerationRequest, emit: Emit | None, should_stop: Callable[[], bool]
    ) -> GenerationResult:
        prompt_tokens = self.prompt_tokens(request)
        # A resumed request continues where the dead node stopped; max_tokens is what is left to generate.
        done = request.resume_tokens
        limit = request.max_tokens if request.max_tokens is not None else self.output_tokens
        total = min(done + limit, self.output_tokens)
        start = self.clock()
        # Sleep to deadlines, not per step, so many tiny sleeps do not add up to drift.
        self._sleep_until(start + self.a + self.b * (prompt_tokens + done))
        stops = StopFilter(request.stop)
        generated = 0
        for index in range(done, total):
            if should_stop():
                return GenerationResult(stops.text, "cancelled", prompt_tokens, generated)
            generated += 1
            self._sleep_until(start + self.a + self.b * (prompt_tokens + done) + self.c * generated)
            word = WORDS[index % len(WORDS)]
            piece = stops.feed(word if index == 0 else " " + word)
            if piece and emit is not None:
                emit(piece)
            if stops.stopped:
                return GenerationResult(stops.text, "stop", prompt_tokens, generated)
        tail = stops.flush()
        if tail and emit is not None:
            emit(tail)
        finish = "length" if total < self.output_tokens else "stop"
        return GenerationResult(stops.text, finish, prompt_tokens, generated)

    def _sleep_until(self, deadline: float) -> None:
        wait = deadline - self.clock()
        if wait > 0:
            self.sleep(wait)
