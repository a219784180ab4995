from tests.fixtures.hub import hf_cache, hub_server, tiny_hub, tiny_model_dir  # noqa: F401
