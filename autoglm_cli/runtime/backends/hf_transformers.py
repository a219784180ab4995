"""The `transformers` backend: real weights, on the CPU or a CUDA GPU (needs the `transformers` extra).

Weights come from a local directory (`source: /path/to/model`) or from the
Hugging Face cache (`source: zai-org/glm-4-9b-chat`, `revision`, `weights.cache_dir`).
Serving never downloads: `autoglm fetch-weights` fills the cache first, so a
missing model fails the node at load time with a message that says so.

Chats use the tokenizer's chat template when it has one (a plain
"role: content" transcript otherwise). `max_tokens`, `temperature` (0: greedy),
`top_p`, `stop` and `seed` are honoured. Streaming goes token by token through
a `BaseStreamer` that decodes incrementally on the model thread itself.

Options (`models.NAME.options`): `device` ("auto", "cpu", "cuda", "cuda:1"),
`dtype` ("auto", "float32", "float16", "bfloat16"; auto = float32 on the CPU,
the checkpoint's dtype on a GPU), `trust_remote_code` (false; GLM checkpoints
with custom code need true), `max_tokens` (default when a request gives none: 256).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import InvalidRequest
from .base import (
    BackendSettings,
    Emit,
    GenerationRequest,
    GenerationResult,
    StopFilter,
    option,
    render_plain_chat,
)

log = logging.getLogger("autoglm.runtime.transformers")

DTYPES = ("auto", "float32", "float16", "bfloat16")


class ModelLoadError(RuntimeError):
    pass


class TransformersBackend:
    def __init__(self, settings: BackendSettings) -> None:
        opts, name = settings.options, settings.model
        self.settings = settings
        self.device_option = option(opts, "device", "auto", str, name)
        self.dtype_option = option(opts, "dtype", "auto", str, name)
        if self.dtype_option not in DTYPES:
            from ...errors import ConfigError

            raise ConfigError(
                f"dtype must be one of {', '.join(DTYPES)}", field=f"models.{name}.options.dtype"
            )
        self.trust_remote_code = option(opts, "trust_remote_code", False, bool, name)
        self.default_max_tokens = option(opts, "max_tokens", 256, int, name)
        self.model = None
        self.tokenizer = None
        self.device = "cpu"
        self._seed_lock = threading.Lock()

    # -- loading ---------------------------------------------------------------

    def _location(self) -> tuple[str, dict]:
        source = self.settings.source
        path = Path(source).expanduser()
        if path.is_dir():
            return str(path), {}
        if source.startswith(("/", "./", "~")):
            raise ModelLoadError(f"model directory {source} does not exist")
        kwargs = {"revision": self.settings.revision, "local_files_only": True}
        if self.settings.cache_dir:
            kwargs["cache_dir"] = self.settings.cache_dir
        return source, kwargs

    def load(self) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise ModelLoadError(
                f"the transformers backend needs the `transformers` extra ({exc.name} is missing): "
                "pip install 'autoglm[transformers]'"
            ) from None
        location, kwargs = self._location()
        device = self.device_option
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        dtype = self.dtype_option
        if dtype == "auto":
            dtype = "auto" if device.startswith("cuda") else "float32"
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                location, trust_remote_code=self.trust_remote_code, **kwargs
            )
            model = AutoModelForCausalLM.from_pretrained(
                location, trust_remote_code=self.trust_remote_code, dtype=torch_dtype, **kwargs
            )
        except OSError as exc:
            hint = "" if not kwargs else " (not in the Hugging Face cache? run `autoglm fetch-weights` first)"
            raise ModelLoadError(f"cannot load {location}{hint}: {exc}") from None
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        log.info("loaded %s on %s (%s)", location, device, dtype)

    def close(self) -> None:
        self.model = None

    # -- generating ------------------------------------------------------------

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        tok = self.tokenizer
        if request.kind == "chat":
            messages = request.messages or []
            if getattr(tok, "chat_template", None):
                ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
                if hasattr(ids, "keys"):  # some versions return a BatchEncoding
                    ids = ids["input_ids"]
                ids = list(ids)
            else:
                ids = tok(render_plain_chat(messages))["input_ids"]
        else:
            ids = tok(request.prompt or "")["input_ids"]
        if request.resume_text:
            ids = list(ids) + tok(request.resume_text, add_special_tokens=False)["input_ids"]
        return list(ids)

    def generate(
        self, request: GenerationRequest, emit: Emit | None, should_stop: Callable[[], bool]
    ) -> GenerationResult:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        ids = self.prompt_ids(request)
        limit = self._context_limit()
        max_new = request.max_tokens or self.default_max_tokens
        if limit is not None and len(ids) >= limit:
            raise InvalidRequest(
                f"the prompt has {len(ids)} tokens; this model reads at most {limit}", param="messages"
            )
        if limit is not None:
            max_new = min(max_new, limit - len(ids))
        streamer = _Streamer(self.tokenizer, StopFilter(request.stop), emit)

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                # On the ids' device: generate() combines it with its own flags (CUDA included).
                return torch.full(
                    (input_ids.shape[0],),
                    streamer.filter.stopped or should_stop(),
                    dtype=torch.bool,
                    device=input_ids.device,
                )

        kwargs = {
            "max_new_tokens": max_new,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Stop()]),
        }
        temperature = request.temperature
        if temperature is not None and temperature == 0:
            kwargs["do_sample"] = False
        elif temperature is not None or request.top_p is not None:
            kwargs["do_sample"] = True
            if temperature is not None:
                kwargs["temperature"] = temperature
            if request.top_p is not None:
                kwargs["top_p"] = request.top_p
        tokenizer = self.tokenizer
        if tokenizer.pad_token_id is not None:
            kwargs["pad_token_id"] = tokenizer.pad_token_id
        input_ids = torch.tensor([ids], device=self.device)
        with torch.inference_mode(), self._seeded(request.seed):
            output = self.model.generate(input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
        new_ids = output[0, len(ids) :].tolist()
        streamer.finish()
        eos = self._eos_ids()
        if should_stop() and not streamer.filter.stopped:
            finish = "cancelled"
        elif streamer.filter.stopped or (new_ids and new_ids[-1] in eos):
            finish = "stop"
        elif len(new_ids) >= max_new:
            finish = "length"
        else:
            finish = "stop"
        return GenerationResult(streamer.filter.text, finish, len(ids), len(new_ids))

    def _seeded(self, seed: int | None):
        import contextlib

        import torch

        if seed is None:
            return contextlib.nullcontext()

        @contextlib.contextmanager
        def seeded():
            with self._seed_lock, torch.random.fork_rng(devices=[] if self.device == "cpu" else None):
                torch.manual_seed(seed)
                yield

        return seeded()

    def _context_limit(self) -> int | None:
        config = self.model.config
        for name in ("max_position_embeddings", "seq_length", "n_positions"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])


class _Streamer:
    """Receives token ids from `generate` (on the model thread); decodes and emits new text.

    Decodes the whole answer so far and emits what is new, holding back a trailing
    U+FFFD (half a multi-byte character) until the next token completes it.
    """

    def __init__(self, tokenizer, stops: StopFilter, emit: Emit | None) -> None:
        self.tokenizer = tokenizer
        self.filter = stops
        self.emit = emit
        self.ids: list[int] = []
        self.decoded = ""
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:  # the first call carries the prompt
            self._prompt_seen = True
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return
        self._push(text[len(self.decoded) :])
        self.decoded = text

    def end(self) -> None:
        pass

    def finish(self) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        self._push(text[len(self.decoded) :])
        self.decoded = text
        tail = self.filter.flush()
        if tail and self.emit is not None:
            self.emit(tail)

    def _push(self, piece: str) -> None:
        if not piece:
            return
        out = self.filter.feed(piece)
        if out and self.emit is not None:
            self.emit(out)
