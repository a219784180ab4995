"""Prompts of a given length in tokens, without a tokenizer.

The traces carry token counts, not text. Common short English words are one token
each in the BPE vocabularies of GLM, Qwen, Llama and GPT models (a leading space
included), so a prompt of N such words is about N tokens; the request index in front
keeps prompts distinct, so a server's prefix cache cannot make the replay cheaper
than the traced traffic was.

Traces with prefix blocks (Mooncake's `hash_ids`) get `prompt_of_blocks`: each block's
text is a function of its id alone, so two requests that share their first k block ids
share their first k blocks of text, byte for byte, and an engine's prefix cache (or the
gateway's prefix hashes, runtime/prefix.py) sees the sharing the trace records.
"""

from __future__ import annotations

_TEXT = (
    "the quick brown fox jumps over a lazy dog while many small teams ship new model servers "
    "to run each day and night for all of their users who ask about code time work data and life"
)
_WORDS = _TEXT.split(" ")


def prompt_of(tokens: int, index: int = 0) -> str:
    """About `tokens` tokens of plain text (at least one word)."""
    count = max(1, tokens)
    start = index % len(_WORDS)
    words = [_WORDS[(start + i) % len(_WORDS)] for i in range(count - 1)]
    return " ".join([f"#{index}", *words])


def _block_text(block_id: int, tokens: int) -> str:
    """`tokens` words standing for one prefix block: the id first, then words from an offset
    it picks (a leading space each, so blocks concatenate without a separator)."""
    start = block_id % len(_WORDS)
    words = [_WORDS[(start + i) % len(_WORDS)] for i in range(max(0, tokens - 1))]
    return "".join([f" #{block_id}", *(" " + w for w in words)]) if tokens > 0 else ""


def prompt_of_blocks(block_ids: tuple[int, ...] | list[int], tokens: int, block_tokens: int) -> str:
    """About `tokens` tokens whose i-th block of `block_tokens` is the text of `block_ids[i]`
    (the last block cut short where the prompt ends; past the last id, the last id's words
    go on). Equal leading ids give an equal leading text."""
    parts: list[str] = []
    left = max(1, tokens)
    for block_id in block_ids:
        if left <= 0:
            break
        take = min(block_tokens, left)
        parts.append(_block_text(int(block_id), take))
        left -= take
    if left > 0:
        parts.append(_block_text(int(block_ids[-1]) if block_ids else 0, left))
    return "".join(parts).lstrip(" ")
