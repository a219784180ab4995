"""The cache locations follow huggingface_hub's and transformers' own precedence."""

from __future__ import annotations

from pathlib import Path

from autoglm_cli.hf_paths import hf_home, hub_cache_dir, modules_cache_dir


def test_hub_cache_precedence():
    assert hub_cache_dir("/w", {"HF_HUB_CACHE": "/x"}) == Path("/w")
    assert hub_cache_dir(None, {"HF_HUB_CACHE": "/x/hub", "HF_HOME": "/y"}) == Path("/x/hub")
    assert hub_cache_dir(None, {"HUGGINGFACE_HUB_CACHE": "/old"}) == Path("/old")
    assert hub_cache_dir(None, {"HF_HOME": "/y"}) == Path("/y/hub")
    assert hub_cache_dir(None, {"XDG_CACHE_HOME": "/z"}) == Path("/z/huggingface/hub")


def test_modules_cache_and_home():
    assert modules_cache_dir({"HF_MODULES_CACHE": "/m"}) == Path("/m")
    assert modules_cache_dir({"HF_HOME": "/y"}) == Path("/y/modules")
    assert hf_home({}) == Path.home() / ".cache" / "huggingface"


def test_agrees_with_huggingface_hub_itself(monkeypatch, tmp_path):
    import subprocess
    import sys

    env = {"HF_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    code = "from huggingface_hub import constants; print(constants.HF_HUB_CACHE)"
    hub = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert Path(hub.stdout.strip()) == hub_cache_dir(None, env)


def test_repo_folder_names_match_huggingface_hub():
    from huggingface_hub.file_download import repo_folder_name as hub_name

    from autoglm_cli.hf_paths import repo_folder_name

    for repo_type in ("model", "dataset", "space"):
        expected = hub_name(repo_id="zai-org/glm-4-9b-chat", repo_type=repo_type)
        assert repo_folder_name("zai-org/glm-4-9b-chat", repo_type) == expected
