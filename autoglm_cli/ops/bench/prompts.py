"""Prompts of a given length in tokens, without a tokenizer.

The traces carry token counts, not text. Common short English words are one token
each in the BPE vocabularies of GLM, Qwen, Llama and GPT models (a leading space
included), so a prompt of N such words is about N tokens; the request index in front
keeps prompts distinct, so a server's prefix cache cannot make the replay cheaper
than the traced traffic was.
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
