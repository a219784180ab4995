"""Fixtures the redeploy tests share with the deploy tests and the hub tests."""

from tests.fixtures.hub import hf_cache, hub_server, tiny_model_dir  # noqa: F401
from tests.ops.deploy.conftest import deployments  # noqa: F401
