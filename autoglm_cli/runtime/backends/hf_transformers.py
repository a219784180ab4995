"""The `transformers` backend: real weights, on the CPU or a CUDA GPU (needs the `transformers` extra).

Weights come from a local directory (`source: /path/to/model`) or from the
Hugging Face cache (`source: zai-org/glm-4-9b-chat`, `revision`, `weights.cache_dir`).
Serving never downloads: `autoglm fetch-weights` fills the cache first, so a
missing model fails the node at load time with a message that says so.

Chats use the tokenizer's chat template when it has one (a plain
"role: content" transcript otherwise). `max_tokens`, `temperature` (0: greedy),
`top_p`, `stop` and `seed` are honoured, per sequence. Requests run in one
continuous batch (`batching.BatchLoop` over `hf_batch.KVBatchEngine`): they join
and leave it between decode steps, on the loop's one thread, which also decodes
each sequence's text for streaming.

Options (`models.NAME.options`): `device` ("auto", "cpu", "cuda", "cuda:1"),
`dtype` ("auto", "float32", "float16", "bfloat16"; auto = float32 on the CPU,
the checkpoint's dtype on a GPU), `trust_remote_code` (false; GLM checkpoints
with custom code need true), `max_tokens` (default when a request gives none: 256),
`max_batch` and `max_batch_tokens` (override `workers.max_batch` / `workers.max_batch_tokens`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from .base import (
    BackendSettings,
    Emit,
    GenerationRequest,
    GenerationResult,
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
        self.max_batch = option(opts, "max_batch", settings.max_batch, int, name)
        self.max_batch_tokens = option(opts, "max_batch_tokens", settings.max_batch_tokens, int, name)
        if self.max_batch < 1:
            from ...errors import ConfigError

            raise ConfigError("max_batch must be at least 1", field=f"models.{name}.options.max_batch")
        self.model = None
        self.tokenizer = None
        self.device = "cpu"
        self.kv_cache_tokens: int | None = None  # set by load(): what the batch may hold
        self.loop = None  # the BatchLoop, started by load()

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
        _reuse_freed_memory()
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.kv_cache_tokens = self._kv_budget()
        log.info(
            "loaded %s on %s (%s); batches up to %d sequences, %d KV-cache tokens",
            location, device, dtype, self.max_batch, self.kv_cache_tokens,
        )  # fmt: skip
        self.start()

    def _kv_budget(self) -> int:
        """KV-cache tokens the batch may reserve: the configured figure, else what fits.

        On a GPU: 90% of the memory free after loading, over the bytes one token takes
        (measured). On the CPU: `max_batch` sequences of the model's context (at most 4096 each).
        """
        import torch

        from .hf_batch import kv_bytes_per_token

        if self.max_batch_tokens is not None:
            return self.max_batch_tokens
        context = min(self.context_limit() or 4096, 4096)
        if self.device.startswith("cuda"):
            free, _total = torch.cuda.mem_get_info(torch.device(self.device))
            return max(context, int(free * 0.9) // kv_bytes_per_token(self.model, self.device))
        return self.max_batch * context

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()
            self.loop = None
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

    def start(self) -> None:
        """Start the batch loop (after `load`): one thread that runs every request of this model."""
        from .batching import BatchLoop
        from .hf_batch import KVBatchEngine

        if self.loop is None:
            self.loop = BatchLoop(
                KVBatchEngine(self),
                max_batch=self.max_batch,
                max_batch_tokens=self.kv_cache_tokens,
                name=self.settings.model,
            )
            self.loop.start()

    def submit(
        self, request: GenerationRequest, emit: Emit | None, should_stop: Callable[[], bool], on_done
    ) -> None:
        """Queue `request` on the batch loop; `on_done(result, error)` comes from the loop's thread."""
        self.start()
        self.loop.submit(request, emit, should_stop, on_done)

    def generate(
        self, request: GenerationRequest, emit: Emit | None, should_stop: Callable[[], bool]
    ) -> GenerationResult:
        """`submit` and wait: the blocking form, for callers on their own thread."""
        done = threading.Event()
        outcome: list = []

        def on_done(result, error) -> None:
            outcome.extend((result, error))
            done.set()

        self.submit(request, emit, should_stop, on_done)
        done.wait()
        result, error = outcome
        if error is not None:
            raise error
        return result

    def batch_stats(self) -> dict:
        stats = self.loop.stats if self.loop is not None else None
        return {
            "max_batch": self.max_batch,
            "kv_cache_tokens": self.kv_cache_tokens,
            "running": stats.running if stats else 0,
            "waiting": stats.waiting if stats else 0,
            "max_running": stats.max_running if stats else 0,
            "steps": stats.steps if stats else 0,
            "cancelled": stats.cancelled if stats else 0,
        }

    def context_limit(self) -> int | None:
        config = self.model.config
        for name in ("max_position_embeddings", "seq_length", "n_positions"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])


def _reuse_freed_memory() -> None:
    """Undo, for this process, the glibc setting Dask starts its workers with.

    Dask's nanny sets `MALLOC_TRIM_THRESHOLD_=65536`; any explicit malloc setting turns
    off glibc's adaptive mmap threshold, so every tensor over 128 KiB becomes a fresh
    mmap that the kernel zero-fills page by page, and a batch allocates dozens per decode
    step (the KV cache grows by concatenation): measured here, a quarter more CPU on the
    model thread, all of it system time. Let glibc keep freed memory for reuse instead.
    """
    import ctypes
    import os
    import sys

    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    libc.mallopt(m_trim_threshold, 256 * 1024 * 1024)
