"""The transformers backend's batch: one left-padded KV cache that sequences join and leave.

`KVBatchEngine` is the `StepEngine` of `batching.BatchLoop` for any causal LM
that transformers loads. Rows are sequences; the cache (`DynamicCache`, one
`[batch, heads, tokens, head_dim]` tensor pair per layer), the attention mask
and the next input ids have one row each.

- prefill: the new prompts, left-padded to one length, run in one forward pass
  (position ids from the mask, so padding never shifts positions); their cache
  is left-padded to the running batch's length and concatenated onto it.
- decode: one token for every row; each row samples with its own settings and
  its own `torch.Generator` (a seed gives the same text whatever else is in the batch).
- retire: ended rows are dropped (`batch_select_indices`), and columns that are
  padding in every remaining row are cut off the left.

A model whose cache is not a plain `DynamicCache` (sliding-window layers, a
legacy tuple from custom code) still batches, but new sequences join only when
the batch is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequest
from .base import GenerationResult, StopFilter
from .batching import Sequence


@dataclass
class Sampler:
    """How one sequence picks its tokens (None in `SeqState.sampler`: greedy)."""

    temperature: float
    top_p: float
    top_k: int
    generator: Any  # torch.Generator


@dataclass(eq=False)
class SeqState:
    prompt: list[int]
    max_new: int
    sampler: Sampler | None
    stream: TextStream
    generated: int = 0


class KVBatchEngine:
    def __init__(self, backend) -> None:
        self.backend = backend
        self.model = backend.model
        self.device = backend.device
        self.eos = backend.eos_ids()
        tok = backend.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.pad_id = pad if pad is not None else 0
        self.mergeable = True  # until a prefill shows a cache it cannot merge
        self.seqs: list[Sequence] = []
        self.cache = None
        self.mask = None  # [rows, tokens] 1 = a real token
        self.last = None  # [rows] the next input id of each row
        self._logits_kw, self._cache_arg = _forward_args(self.model)

    # -- StepEngine -----------------------------------------------------------------

    def prepare(self, seq: Sequence) -> int:
        request, backend = seq.request, self.backend
        ids = backend.prompt_ids(request)
        limit = backend.context_limit()
        if limit is not None and len(ids) >= limit:
            raise InvalidRequest(
                f"the prompt has {len(ids)} tokens; this model reads at most {limit}", param="messages"
            )
        max_new = request.max_tokens or backend.default_max_tokens
        if limit is not None:
            max_new = min(max_new, limit - len(ids))
        stream = TextStream(backend.tokenizer, StopFilter(request.stop), seq.emit)
        seq.state = SeqState(ids, max_new, self._sampler(request), stream)
        return len(ids) + max_new

    def prefill(self, seqs: list[Sequence]) -> None:
        import torch

        prompts = [s.state.prompt for s in seqs]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).masked_fill_(mask == 0, 1)
        with torch.inference_mode():
            out = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **self._logits_kw
            )
            tokens = self._pick(out.logits[:, -1, :], seqs)
        cache = _cache_of(out)
        if self.cache is None:
            self.mergeable = _mergeable(cache)
            self.cache, self.mask, self.last = cache, mask, tokens
        else:
            self._merge(cache, mask, tokens)
        self.seqs.extend(seqs)
        for seq, token in zip(seqs, tokens.tolist(), strict=True):
            self._accept(seq, token)

    def decode(self) -> None:
        import torch

        rows = len(self.seqs)
        self.mask = torch.cat([self.mask, self.mask.new_ones((rows, 1))], dim=1)
        positions = self.mask.sum(-1, keepdim=True) - 1
        with torch.inference_mode():
            out = self.model(
                input_ids=self.last[:, None],
                attention_mask=self.mask,
                position_ids=positions,
                use_cache=True,
                **{self._cache_arg: self.cache},
                **self._logits_kw,
            )
            tokens = self._pick(out.logits[:, -1, :], self.seqs)
        self.cache, self.last = _cache_of(out), tokens
        for seq, token in zip(self.seqs, tokens.tolist(), strict=True):
            self._accept(seq, token)

    def retire(self, seqs: list[Sequence]) -> None:
        import torch

        gone = {id(s) for s in seqs}
        keep = [i for i, s in enumerate(self.seqs) if id(s) not in gone]
        if len(keep) == len(self.seqs):
            return
        if not keep:
            self.reset()
            return
        index = torch.tensor(keep, device=self.mask.device)
        self.cache = _select_rows(self.cache, index)
        self.mask, self.last = self.mask[index], self.last[index]
        self.seqs = [self.seqs[i] for i in keep]
        if self.mergeable:  # columns that are padding in every remaining row
            first = int(self.mask.any(dim=0).int().argmax())
            if first > 0:
                for layer in self.cache.layers:
                    layer.keys = layer.keys[:, :, first:, :]
                    layer.values = layer.values[:, :, first:, :]
                self.mask = self.mask[:, first:]

    def reset(self) -> None:
        self.seqs, self.cache, self.mask, self.last = [], None, None, None

    # -- per sequence ----------------------------------------------------------------

    def _sampler(self, request) -> Sampler | None:
        import torch

        config = self.model.generation_config
        temperature = request.temperature
        if temperature is None and request.top_p is None and not getattr(config, "do_sample", False):
            return None
        if temperature is None:
            temperature = getattr(config, "temperature", None) or 1.0
        if temperature == 0:
            return None
        top_p = request.top_p if request.top_p is not None else (getattr(config, "top_p", None) or 1.0)
        generator = torch.Generator(device=self.device)
        try:
            if request.seed is None:
                generator.seed()
            else:
                generator.manual_seed(request.seed)
        except (RuntimeError, OverflowError, ValueError):
            raise InvalidRequest(f"seed {request.seed} is out of range", param="seed") from None
        return Sampler(float(temperature), float(top_p), int(getattr(config, "top_k", None) or 0), generator)

    def _pick(self, logits, seqs: list[Sequence]):
        tokens = logits.argmax(dim=-1)
        for row, seq in enumerate(seqs):
            sampler = seq.state.sampler
            if sampler is None or seq.ended:
                continue
            try:
                tokens[row] = _sample(logits[row], sampler)
            except Exception as exc:  # this sequence's sampling failed: it fails alone
                seq.error = exc
        return tokens

    def _accept(self, seq: Sequence, token: int) -> None:
        if seq.ended:
            return
        state = seq.state
        try:
            state.generated += 1
            state.stream.put(token)
            if state.stream.filter.stopped or token in self.eos:
                finish = "stop"
            elif state.generated >= state.max_new:
                finish = "length"
            elif seq.should_stop():
                finish = "cancelled"
            else:
                return
            state.stream.finish()
            text = state.stream.filter.text
            seq.result = GenerationResult(text, finish, len(state.prompt), state.generated)
        except Exception as exc:  # its stream callback or its decoding: it fails alone
            seq.error = exc

    def _merge(self, cache, mask, tokens) -> None:
        import torch
        import torch.nn.functional as F

        old, new = self.mask.shape[1], mask.shape[1]
        width = max(old, new)

        def pad(t, n):  # [rows, heads, tokens, dim]: n columns of padding on the left
            return F.pad(t, (0, 0, n, 0)) if n else t

        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([pad(mine.keys, width - old), pad(theirs.keys, width - new)], dim=0)
            mine.values = torch.cat([pad(mine.values, width - old), pad(theirs.values, width - new)], dim=0)
        self.mask = torch.cat([F.pad(self.mask, (width - old, 0)), F.pad(mask, (width - new, 0))], dim=0)
        self.last = torch.cat([self.last, tokens], dim=0)


@dataclass
class TextStream:
    """Turns one sequence's token ids into text as they come; emits what is new, past the stop filter.

    Decodes the whole answer so far and emits what is new, holding back a trailing
    U+FFFD (half a multi-byte character) until the next token completes it.
    """

    tokenizer: Any
    filter: StopFilter
    emit: Any
    ids: list[int] = field(default_factory=list)
    decoded: str = ""

    def put(self, token: int) -> None:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return
        self._push(text[len(self.decoded) :])
        self.decoded = text

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


def _sample(logits, sampler: Sampler) -> int:
    import torch

    scores = logits.float() / sampler.temperature
    if 0 < sampler.top_k < scores.shape[-1]:
        kth = torch.topk(scores, sampler.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if sampler.top_p < 1.0:
        ordered, order = torch.sort(scores, descending=True)
        probs = ordered.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs > sampler.top_p  # keep the smallest set reaching top_p
        scores = scores.scatter(0, order, ordered.masked_fill(drop, float("-inf")))
    probs = scores.softmax(dim=-1)
    return int(torch.multinomial(probs, 1, generator=sampler.generator))


def _mergeable(cache) -> bool:
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer
    except ImportError:
        return False
    return isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)


def _select_rows(cache, index):
    if hasattr(cache, "batch_select_indices"):
        cache.batch_select_indices(index)
        return cache
    return tuple(tuple(t[index] for t in layer) for layer in cache)  # a legacy tuple cache


def _forward_args(model) -> tuple[dict, str]:
    """What the model's forward calls its cache argument (`cache` since transformers 5.2x,
    `past_key_values` before and in custom code), and `logits_to_keep=1` where it takes it
    (only the last position's logits: no [rows, tokens, vocab] tensor in a prefill)."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        params = {}
    logits = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    return logits, ("cache" if "cache" in params else "past_key_values")


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def kv_bytes_per_token(model, device) -> int:
    """Bytes of KV cache one token takes, measured with one short forward pass (any cache layout)."""
    import torch

    tokens = 8
    ids = torch.zeros((1, tokens), dtype=torch.long, device=device)
    with torch.inference_mode():
        cache = _cache_of(model(input_ids=ids, use_cache=True))
    total = 0
    layers = getattr(cache, "layers", cache)
    for layer in layers or ():
        tensors = (layer.keys, layer.values) if hasattr(layer, "keys") else tuple(layer)
        total += sum(t.numel() * t.element_size() for t in tensors if hasattr(t, "numel"))
    return max(1, total // tokens)
