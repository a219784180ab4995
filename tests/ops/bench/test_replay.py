"""What `autoglm bench` sends: prompts that keep the trace's shared prefixes, max_tokens as a
client sets it, and (for test engines only) the traced output length in its own field."""

from __future__ import annotations

from autoglm_cli.ops.bench.prompts import prompt_of, prompt_of_blocks
from autoglm_cli.ops.bench.replay import ReplaySettings, request_body
from autoglm_cli.ops.bench.trace import TraceRequest
from autoglm_cli.runtime.prefix import BLOCK_CHARS, prompt_hashes, shared_blocks

SETTINGS = ReplaySettings(base_url="http://x/v1", model="m")


def _hashes(body: dict) -> tuple[int, ...]:
    return prompt_hashes(messages=body["messages"])


def test_requests_sharing_leading_block_ids_share_their_prompt_prefix_byte_for_byte():
    turn1 = TraceRequest(0.0, 1200, 10, (7, 8, 9))  # 512 + 512 + 176 tokens
    turn2 = TraceRequest(1.0, 2000, 10, (7, 8, 10, 11))  # the same first two blocks
    other = TraceRequest(2.0, 2000, 10, (7, 12, 13, 14))  # only the first (a system prompt)
    a, b, c = (request_body(SETTINGS, i, r)[0] for i, r in enumerate((turn1, turn2, other)))
    text_a, text_b = (x["messages"][0]["content"] for x in (a, b))
    two_blocks = len(prompt_of_blocks((7, 8), 1024, 512))
    differ = next(i for i, (x, y) in enumerate(zip(text_a, text_b, strict=False)) if x != y)
    assert two_blocks <= differ <= two_blocks + 2  # " #9..." against " #10..."
    # ...so the gateway's prefix hashes (and an engine's cache) see the sharing the trace records.
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert shared_blocks(ha, hb) == (differ + len('{"content":"')) // BLOCK_CHARS
    assert 0 < shared_blocks(ha, hc) < shared_blocks(ha, hb)
    # About one word a token.
    assert abs(len(text_a.split()) - 1200) <= 3 and abs(len(text_b.split()) - 2000) <= 4


def test_the_same_block_id_gives_the_same_text_cut_where_the_prompt_ends():
    short = prompt_of_blocks((5,), 100, 512)
    long = prompt_of_blocks((5, 6), 900, 512)
    assert long.startswith(short) and len(short.split()) == 100
    # Past the last id, the prompt still has its length.
    assert len(prompt_of_blocks((5,), 700, 512).split()) == 700


def test_requests_without_prefix_blocks_stay_distinct():
    a, b = (request_body(SETTINGS, i, TraceRequest(0.0, 300, 5))[0] for i in range(2))
    assert a["messages"][0]["content"] == prompt_of(300, 0)
    assert shared_blocks(_hashes(a), _hashes(b)) == 0


def test_max_tokens_is_the_traced_length_unless_a_constant_is_given():
    request = TraceRequest(0.0, 50, 123, (1, 2))
    assert request_body(SETTINGS, 0, request)[0]["max_tokens"] == 123
    constant = ReplaySettings(base_url="http://x/v1", model="m", max_tokens=4096)
    body, _, max_tokens = request_body(constant, 0, request)
    assert body["max_tokens"] == max_tokens == 4096 and "fake_output_tokens" not in body
    hinted = ReplaySettings(
        base_url="http://x/v1", model="m", max_tokens=4096, output_length_field="fake_output_tokens"
    )
    body = request_body(hinted, 0, request)[0]
    assert body["max_tokens"] == 4096 and body["fake_output_tokens"] == 123
