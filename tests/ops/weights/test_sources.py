"""Repo ids, the `moves` map, endpoint order and sha256 manifests."""

from __future__ import annotations

import pytest

from autoglm_cli.ops.weights.sources import apply_moves, endpoints_to_try, is_repo_id, parse_sha256sum


@pytest.mark.parametrize(
    ("repo", "moves", "expected"),
    [
        ("THUDM/glm-4-9b-chat", {"THUDM": "zai-org"}, "zai-org/glm-4-9b-chat"),
        ("THUDM/glm-4-9b-chat", {"THUDM/": "zai-org/"}, "zai-org/glm-4-9b-chat"),
        (
            "THUDM/glm-4-9b-chat",
            {"THUDM/glm-4-9b-chat": "zai-org/glm-4-9b-chat-hf"},
            "zai-org/glm-4-9b-chat-hf",
        ),
        ("THUDM/chatglm3-6b", {"THUDM": "zai-org", "THUDM/chatglm3-6b": "other/x"}, "other/x"),
        ("THUDMX/model", {"THUDM": "zai-org"}, "THUDMX/model"),
        ("THUDM/x", {"https://github.com/THUDM": "https://github.com/zai-org"}, "THUDM/x"),
        ("THUDM/x", {"github.com/THUDM/": "github.com/zai-org/"}, "THUDM/x"),
        ("THUDM/x", {"huggingface.co/THUDM/": "huggingface.co/zai-org/"}, "zai-org/x"),
        ("THUDM/x", {"https://hf.co/THUDM": "zai-org"}, "zai-org/x"),
    ],
)
def test_apply_moves(repo, moves, expected):
    assert apply_moves(repo, moves) == expected


def test_repo_ids():
    assert is_repo_id("zai-org/glm-4-9b-chat") and is_repo_id("gpt2")
    assert not is_repo_id("a/b/c") and not is_repo_id("../x") and not is_repo_id("just a name")


def test_endpoint_order(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example/")
    assert endpoints_to_try("http://cli/", ["http://a", "http://b"]) == ["http://cli"]
    assert endpoints_to_try(None, ["http://a/", "http://b"]) == ["http://a", "http://b"]
    assert endpoints_to_try(None, []) == ["https://hf-mirror.example"]
    monkeypatch.delenv("HF_ENDPOINT")
    assert endpoints_to_try(None, []) == ["https://huggingface.co"]


def test_parse_sha256sum_forms():
    digest = "ab" * 32
    text = f"# comment\n\n{digest}  resnet50.pth\n{digest.upper()} *bin.pth\nnot a line\n"
    assert parse_sha256sum(text) == [(digest, "resnet50.pth"), (digest, "bin.pth")]
    assert parse_sha256sum(digest) == [(digest, "")]


def test_a_refused_token_is_named_not_connectivity(hub_server, fake_files):
    """A 401 for a wrong token says the token was refused (it used to say "check connectivity")."""
    from autoglm_cli.errors import NetworkError
    from autoglm_cli.ops.weights.sources import resolve_hub

    hub_server.token = "hf_TheRightTokenValueIsThisOne12345"
    hub_server.add_repo("org/private", fake_files, private=True)
    wrong = "hf_AWrongTokenValueThatIsNotTheRight1"
    with pytest.raises(NetworkError) as caught:
        resolve_hub("org/private", endpoints=[hub_server.endpoint], token=wrong)
    error = caught.value
    assert "refused the token (HTTP 401)" in error.message
    assert "HF_TOKEN" in error.remedy and "connectivity" not in error.message + error.remedy
    assert wrong not in error.message + error.remedy
