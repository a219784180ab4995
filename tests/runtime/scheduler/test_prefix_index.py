from autoglm_cli.runtime.prefix import prompt_hashes
from autoglm_cli.runtime.scheduler.prefix_index import PrefixIndex

SYSTEM = {"role": "system", "content": "Tools: search, calculator. Be brief. " * 30}


def chat(*turns: str) -> tuple[int, ...]:
    return prompt_hashes(messages=[SYSTEM, *({"role": "user", "content": t * 60} for t in turns)])


def test_the_node_that_served_a_prefix_last_matches_deepest():
    index = PrefixIndex()
    index.record(chat("first question "), "a")
    index.record(prompt_hashes(messages=[SYSTEM]), "b")  # the system prompt alone, later, on b
    found = index.matches(chat("first question ", "follow-up "))
    system_blocks = len(prompt_hashes(messages=[SYSTEM]))
    assert found["a"] > found["b"] == system_blocks
    assert index.matches(chat("unrelated ")) == {"b": system_blocks}
    assert index.matches(prompt_hashes(prompt="nothing shared " * 40)) == {}


def test_bounded_and_forgets_nodes():
    index = PrefixIndex(capacity=3)
    index.record(chat("x "), "a")
    assert len(chat("x ")) > 3 and len(index) == 3
    index.forget("a")
    assert len(index) == 0 and index.matches(chat("x ")) == {}
