"""Remote URLs: the forms git accepts, `moves` rewriting, and where credentials may go."""

from __future__ import annotations

import pytest

from autoglm_cli.ops.repo.urls import (
    GitUrl,
    apply_moves,
    carry_credentials,
    display,
    repository_name,
    same_repository,
)

MOVES = {"github.com/THUDM/": "github.com/zai-org/"}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("https://github.com/THUDM/GLM-4.git", "https://github.com/zai-org/GLM-4.git"),
        ("https://github.com/THUDM/GLM-4", "https://github.com/zai-org/GLM-4"),
        ("ssh://git@github.com/THUDM/GLM-4.git", "ssh://git@github.com/zai-org/GLM-4.git"),
        ("ssh://git@github.com:22/THUDM/GLM-4.git", "ssh://git@github.com:22/zai-org/GLM-4.git"),
        ("git@github.com:THUDM/GLM-4.git", "git@github.com:zai-org/GLM-4.git"),
        ("https://bob:tok123@github.com/THUDM/GLM-4.git", "https://bob:tok123@github.com/zai-org/GLM-4.git"),
        ("https://tok123@github.com/THUDM/GLM-4.git", "https://tok123@github.com/zai-org/GLM-4.git"),
    ],
)
def test_a_host_prefix_moves_every_form_and_keeps_it(old, new):
    rewrite = apply_moves(old, MOVES)
    assert rewrite is not None
    assert rewrite.new == new
    assert rewrite.rule == "github.com/THUDM/"
    assert not rewrite.credentials_dropped


def test_no_match_is_none():
    assert apply_moves("https://github.com/zai-org/GLM-4.git", MOVES) is None
    assert apply_moves("https://gitlab.com/THUDM/GLM-4.git", MOVES) is None


def test_a_prefix_only_matches_at_a_path_boundary():
    moves = {"github.com/THUDM": "github.com/zai-org"}
    assert apply_moves("https://github.com/THUDM2/x.git", moves) is None
    assert apply_moves("https://github.com/THUDM/x.git", moves).new == "https://github.com/zai-org/x.git"


def test_the_longest_key_wins():
    moves = {**MOVES, "github.com/THUDM/GLM-4": "github.com/glm-team/GLM-4"}
    assert (
        apply_moves("https://github.com/THUDM/GLM-4.git", moves).new
        == "https://github.com/glm-team/GLM-4.git"
    )
    assert apply_moves("https://github.com/THUDM/chatglm3.git", moves).new == (
        "https://github.com/zai-org/chatglm3.git"
    )


def test_keys_with_a_scheme_match_only_that_scheme():
    moves = {"https://github.com/THUDM/": "https://github.com/zai-org/"}
    assert apply_moves("https://github.com/THUDM/x", moves).new == "https://github.com/zai-org/x"
    assert apply_moves("git@github.com:THUDM/x", moves) is None


def test_file_urls_move_like_any_other():
    moves = {"file:///srv/git/THUDM/": "file:///srv/git/zai-org/"}
    assert apply_moves("file:///srv/git/THUDM/GLM-4.git", moves).new == "file:///srv/git/zai-org/GLM-4.git"


def test_a_token_is_not_carried_to_another_host():
    moves = {"github.com/THUDM/": "git.example.com/zai-org/"}
    rewrite = apply_moves("https://bob:tok123@github.com/THUDM/GLM-4.git", moves)
    assert rewrite.new == "https://git.example.com/zai-org/GLM-4.git"
    assert rewrite.credentials_dropped


def test_an_ssh_user_name_is_no_secret_and_moves_along():
    moves = {"github.com/THUDM/": "git.example.com/zai-org/"}
    rewrite = apply_moves("git@github.com:THUDM/GLM-4.git", moves)
    assert rewrite.new == "git@git.example.com:zai-org/GLM-4.git"
    assert not rewrite.credentials_dropped


def test_to_url_gets_the_old_credentials_on_the_same_host_only():
    old = "https://bob:tok123@github.com/THUDM/GLM-4.git"
    assert carry_credentials(old, "https://github.com/zai-org/GLM-4.git", rule="--to").new == (
        "https://bob:tok123@github.com/zai-org/GLM-4.git"
    )
    assert carry_credentials(old, "https://other:pw@github.com/zai-org/GLM-4.git", rule="--to").new == (
        "https://other:pw@github.com/zai-org/GLM-4.git"
    )
    elsewhere = carry_credentials(old, "https://mirror.example.com/GLM-4.git", rule="--to")
    assert elsewhere.new == "https://mirror.example.com/GLM-4.git" and elsewhere.credentials_dropped


def test_display_masks_credentials():
    assert display("https://bob:tok123@github.com/x.git") == "https://bob:***@github.com/x.git"
    assert display("git@github.com:THUDM/x.git") == "git@github.com:THUDM/x.git"


def test_same_repository_ignores_credentials_and_suffixes():
    assert same_repository("https://bob:t@github.com/zai-org/GLM-4.git", "https://github.com/zai-org/GLM-4/")
    assert not same_repository("https://github.com/zai-org/GLM-4", "https://github.com/THUDM/GLM-4")


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/zai-org/GLM-4.git", "GLM-4"),
        ("git@github.com:zai-org/glm-4-9b-chat.git", "glm-4-9b-chat"),
        ("file:///srv/git/GLM-4/", "GLM-4"),
        ("/srv/git/lib.git", "lib"),
        ("host:repo.git", "repo"),
    ],
)
def test_repository_name_is_what_git_clone_would_create(url, name):
    assert repository_name(url) == name


def test_parse_and_render_round_trip():
    for url in (
        "https://u:p@h:8443/a/b.git",
        "ssh://git@h/a.git",
        "git@h:a/b.git",
        "file:///x/y.git",
        "/x/y",
        "C:\\repos\\x",
    ):
        assert GitUrl.parse(url).render() == url
    assert GitUrl.parse("C:\\repos\\x").style == "local"
