"""Which image tags `deploy --target docker` treats as its own builds (and may tidy away)."""

from __future__ import annotations

import pytest

from autoglm_cli.ops.deploy.docker_target import _is_built_tag


@pytest.mark.parametrize(
    ("tag", "built"),
    [
        ("autoglm:0.1.0-0123456789ab", True),
        ("autoglm:0.1.0rc1-deadbeef0000", True),
        ("autoglm:local", False),  # docs/deploy.md's hand-built tag
        ("autoglm:custom-1234abcd", False),  # someone's image FROM ours (it inherits our label)
        ("autoglm:0.1.0-0123456789AB", False),
        ("autoglm-base:test", False),
        ("registry.example/autoglm:0.1.0-0123456789ab", False),
    ],
)
def test_only_tags_of_the_shape_deploy_gives_count_as_its_builds(tag, built):
    assert _is_built_tag(tag) is built
