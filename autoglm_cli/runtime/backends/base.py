"""What a backend receives and returns, and the helpers every backend shares.

Two shapes of backend exist:

- threaded (transformers, simulated): `load()` and a blocking `generate(request,
  emit, should_stop)`; a `ModelHost` runs them on its one model thread, in a Dask
  worker (as an actor) or in the gateway process (engine "inline");
- upstream (openai): async HTTP calls from the gateway process, see `openai_upstream`.

Everything here is picklable: requests and results cross the Dask boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

Emit = Callable[[str], None]


@dataclass(frozen=True)
class BackendSettings:
    """Everything a backend needs to load one model, resolved from config in the gateway."""

    model: str  # the name clients use
    backend: str  # "transformers" | "openai" | "simulated"
    source: str = ""
    revision: str = "main"
    options: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None
    read_timeout: float = 60.0
    max_connections: int = 100
    max_idle_connections: int = 20
    idle_timeout: float = 300.0
    log_level: str = "WARNING"
    retry_tries: int = 3  # the config's `retry` section, for upstream calls
    retry_base: float = 1.0
    retry_max_delay: float = 30.0
    max_batch: int = 32  # sequences one node batches at once (`workers.max_batch`)
    max_batch_tokens: int | None = None  # KV-cache tokens of its batch (None: what fits)


@dataclass
class GenerationRequest:
    id: str
    model: str
    kind: Literal["chat", "completion"] = "chat"
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    # Text an earlier node already generated and streamed before it died: continue after it.
    # `resume_tokens` counts it; `max_tokens` is then what is left to generate.
    resume_text: str = ""
    resume_tokens: int = 0
    # The client's request body as it came (upstream nodes send it on unchanged, with only
    # `model` rewritten: `openai_upstream`); None for requests built here. In-process
    # backends never read it.
    passthrough: dict | None = None
    # The limit when the client gave no max_tokens (up to the context, or the config's cap),
    # applied by an in-process node's handle; `max_tokens` stays None so the scheduler knows
    # the length is unbounded.
    max_tokens_default: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GenerationResult:
    text: str
    finish_reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int
    node: str = ""  # the node that produced it (filled in by the runtime)
    raw: bytes | None = None  # passthrough: the engine's response body, sent to the client as is
    first_token_s: float | None = None  # seconds from sending to the first generated piece (streams)

    def to_dict(self) -> dict:
        return asdict(self)


class ThreadedBackend(Protocol):
    def load(self) -> None: ...

    def generate(
        self, request: GenerationRequest, emit: Emit | None, should_stop: Callable[[], bool]
    ) -> GenerationResult: ...

    def close(self) -> None: ...


class StopFilter:
    """Cuts a text stream at the first stop sequence, never emitting part of one.

    Holds back the tail that could still become a stop sequence; `feed` returns the
    text that is safe to emit now, `flush` the rest once generation ends.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self.stops), default=1) - 1
        self._pending = ""
        self.text = ""  # everything emitted so far
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self._pending += piece
        cut = min((i for i in (self._pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            out, self._pending, self.stopped = self._pending[:cut], "", True
        elif self._hold and len(self._pending) > self._hold:
            out, self._pending = self._pending[: -self._hold], self._pending[-self._hold :]
        elif self._hold:
            out = ""
        else:
            out, self._pending = self._pending, ""
        self.text += out
        return out

    def flush(self) -> str:
        out, self._pending = ("" if self.stopped else self._pending), ""
        self.text += out
        return out


def render_plain_chat(messages: list[dict[str, str]]) -> str:
    """A chat as plain text, for tokenizers without a chat template."""
    lines = [f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages]
    return "\n".join(lines) + "\nassistant:"


def option(
    options: dict[str, Any], name: str, default: Any, kind: type | tuple[type, ...], model: str
) -> Any:
    """One backend option, type-checked, with a config error that names it."""
    from ...errors import ConfigError

    value = options.get(name, default)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"expected {names}, got {value!r}", field=f"models.{model}.options.{name}")
    return value
