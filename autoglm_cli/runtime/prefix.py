"""Prompt-prefix identity for cache-aware routing: chained hashes of fixed-size blocks.

An engine's prefix cache (vLLM's automatic prefix caching, SGLang's radix cache) keeps
the KV entries of prompts it has seen; a request whose prompt starts the same way (a
shared system prompt, the earlier turns of a conversation) is cheaper on the node that
holds them. The gateway cannot see tokens, so it hashes the rendered prompt text in
blocks of `BLOCK_CHARS` bytes (about 64 tokens). Block i's hash covers every byte up to
the end of block i (each hash is chained over the previous one), so two prompts share
exactly their first k hashes when their first k blocks are equal. Only whole blocks
count (as in the engines' caches). Nothing of the text is kept: 64-bit digests only.
"""

from __future__ import annotations

import hashlib
import json

BLOCK_CHARS = 256  # bytes of rendered prompt per block (~64 tokens at ~4 bytes a token)
BLOCK_TOKENS = 64  # what the router takes one block to be worth in prompt tokens
MAX_BLOCKS = 128  # hashes kept per prompt (32 KiB of prompt); longer prompts share at most that


def block_hashes(
    data: bytes | str, *, block: int = BLOCK_CHARS, max_blocks: int = MAX_BLOCKS
) -> tuple[int, ...]:
    """The chained hashes of `data`'s whole blocks (at most `max_blocks`)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    count = min(len(data) // block, max_blocks)
    hashes: list[int] = []
    previous = b""
    for i in range(count):
        digest = hashlib.blake2b(previous + data[i * block : (i + 1) * block], digest_size=8).digest()
        hashes.append(int.from_bytes(digest, "big"))
        previous = digest
    return tuple(hashes)


def render_messages(messages: list[dict]) -> str:
    """A chat as one canonical text: each message as JSON with sorted keys, in order.

    Message boundaries are part of the text, so a conversation's earlier turns are a
    prefix of the next request's rendering."""
    return "\n".join(
        json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for m in messages
    )


def prompt_hashes(*, messages: list[dict] | None = None, prompt: str | None = None) -> tuple[int, ...]:
    """The prefix hashes of a chat (`messages`) or a completion (`prompt`)."""
    if messages is not None:
        return block_hashes(render_messages(messages))
    return block_hashes(prompt or "")


def shared_blocks(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """How many leading blocks two prompts share (chained hashes: equal while the prefixes are)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
