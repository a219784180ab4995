"""What each backend kind honours, checked at the gateway before a request is queued.

Engine nodes (`openai` backend: vLLM, SGLang, a hosted API) get the client's body as it
came (passthrough), so every field reaches the engine and the engine judges it. The
in-process backends (`transformers`, `simulated`) honour `IN_PROCESS_FIELDS` only; any
other field with a value that would change the answer is refused with 400
`unsupported_parameter` naming it, instead of being ignored. Values that change nothing
(`logprobs: false`, `n: 1`, `tools: []`, `tool_choice: "none"`, a `null`) pass.

The context length of an in-process model (`context_length`) bounds `max_tokens` as
vLLM does (over it: 400), and a request without `max_tokens` may generate up to it,
or up to the model's `options.max_tokens` when the config caps it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InvalidRequest
from .base import BackendSettings

PASSTHROUGH_BACKENDS = frozenset({"openai"})
IN_PROCESS_FIELDS = frozenset(
    {
        "model",
        "messages",
        "prompt",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
        "n",
        "seed",
        "priority",  # the gateway's own
        "user",  # an end-user id for abuse tracking: nothing to honour
    }
)
MESSAGE_FIELDS = frozenset({"role", "content"})
MESSAGE_ROLES = frozenset({"system", "user", "assistant"})
_NO_EFFECT = {"tool_choice": ("none", "auto"), "response_format": ({"type": "text"},), "n": (1,)}


def passthrough(settings: BackendSettings | None) -> bool:
    return settings is not None and settings.backend in PASSTHROUGH_BACKENDS


def _no_effect(name: str, value) -> bool:
    return value in (None, False, 0, "", [], {}) or value in _NO_EFFECT.get(name, ())


def _refuse(param: str, where: str) -> InvalidRequest:
    return InvalidRequest(
        f"`{param}` is not supported by {where}; remove it, or serve the "
        "model with an engine (backend: openai, or `autoglm worker --engine vllm`)",
        code="unsupported_parameter",
        param=param,
    )


def check_supported(raw: dict, settings: BackendSettings) -> None:
    """Refuse (400 `unsupported_parameter`) what `settings`' backend cannot honour."""
    if not passthrough(settings):
        check_fields(raw, f"the in-process {settings.backend} backend")


def check_fields(raw: dict, where: str) -> None:
    """Refuse the fields of a client body an in-process backend (`where`, for the message) cannot honour."""
    for name, value in raw.items():
        if (name not in IN_PROCESS_FIELDS or name in _NO_EFFECT) and not _no_effect(name, value):
            raise _refuse(name, where)
    options = raw.get("stream_options") or {}
    for name, value in options.items() if isinstance(options, dict) else ():
        if name != "include_usage" and not _no_effect(name, value):
            raise _refuse(f"stream_options.{name}", where)
    for index, message in enumerate(raw.get("messages") or ()):
        if not isinstance(message, dict):
            continue
        if message.get("role") not in MESSAGE_ROLES:
            raise _refuse(f"messages[{index}].role", where)
        for name, value in message.items():
            if name not in MESSAGE_FIELDS and not _no_effect(name, value):
                raise _refuse(f"messages[{index}].{name}", where)


_CONTEXT: dict[tuple, int | None] = {}


def context_length(settings: BackendSettings) -> int | None:
    """The model's context length in tokens: `options.context_length`, else its config.json
    (`max_position_embeddings`, `seq_length` or `n_positions`) from the local directory or
    the HF cache; None when unknown. Read once per model."""
    key = (settings.model, settings.source, settings.revision, settings.cache_dir)
    if key not in _CONTEXT:
        _CONTEXT[key] = _read_context_length(settings)
    return _CONTEXT[key]


def _read_context_length(settings: BackendSettings) -> int | None:
    given = settings.options.get("context_length")
    if isinstance(given, int) and not isinstance(given, bool) and given > 0:
        return given
    if settings.backend != "transformers":
        return None
    config = _config_file(settings)
    if config is None:
        return None
    try:
        data = json.loads(Path(config).read_text())
    except (OSError, ValueError):
        return None
    for name in ("max_position_embeddings", "seq_length", "n_positions"):
        value = data.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _config_file(settings: BackendSettings) -> str | None:
    local = Path(settings.source).expanduser()
    if local.is_dir():
        return str(local / "config.json")
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(
            settings.source, "config.json", cache_dir=settings.cache_dir, revision=settings.revision
        )
    except Exception:  # not a repo id, or no cache: the context stays unknown
        return None
    return found if isinstance(found, str) else None


def max_tokens_for(requested: int | None, settings: BackendSettings, prompt_tokens: int) -> int | None:
    """The `max_tokens` an in-process request runs with.

    Over the context length: 400, as vLLM answers. None (not given): up to the context
    (what is left after the prompt, by the estimate), capped by `options.max_tokens` when
    the config sets it; None when neither is known (the backend's own default)."""
    context = context_length(settings)
    if requested is not None:
        if context is not None and requested > context:
            raise InvalidRequest(
                f"This model's maximum context length is {context} tokens. However, you requested "
                f"{requested + prompt_tokens} tokens (about {prompt_tokens} in the messages, {requested} "
                "in the completion). Please reduce the length of the messages or completion.",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return requested
    cap = settings.options.get("max_tokens")
    cap = cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None
    room = max(1, context - prompt_tokens) if context is not None else None
    if cap is None or room is None:
        return cap or room
    return min(cap, room)
