"""Which image tags `deploy --target docker` treats as its own builds (and may tidy away)."""

from __future__ import annotations

import pytest

from autoglm_cli.ops.deploy.docker_target import _is_built_tag
from tests.ops.deploy.conftest import deployment_record


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


class _EngineDown:
    """A docker client whose engine stopped answering between the gate and the tidy."""

    class containers:  # noqa: N801 - the SDK's attribute name
        @staticmethod
        def list(**_):
            from docker.errors import APIError

            raise APIError("500 Server Error: engine is shutting down")


def test_an_engine_error_while_tidying_is_reported_not_raised():
    from autoglm_cli.ops.deploy.docker_target import DockerTarget

    target = DockerTarget()
    target._client = _EngineDown()
    live = deployment_record(target="docker", image="autoglm:0.1.0-0123456789ab")
    tidied = target.tidy(live)
    assert tidied.removed == () and "engine is shutting down" in tidied.problem
