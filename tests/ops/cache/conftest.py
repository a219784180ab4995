"""Real caches for the migrate-cache tests, built by huggingface_hub from the local hub server.

- `old_hub_cache`: an HF cache holding `THUDM/glm-4-9b-chat` and `THUDM/chatglm3-6b`
  exactly as `snapshot_download` wrote them (blobs, snapshot symlinks, refs, a
  `.no_exist` marker, tree listings, .locks), downloaded under the *old* ids.
- `state_dir`: `AUTOGLM_STATE_DIR` for the test, so the journal lands in tmp_path.
- `snapshot_tree(path)`: every file under `path` -> ("file", sha256) / ("link", text),
  to assert byte-identical results.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from autoglm_cli.testing.hub_server import HubServer, fake_model_files
from tests.fixtures.hub import hf_cache, hub_server  # noqa: F401

GLM = "THUDM/glm-4-9b-chat"
CHATGLM = "THUDM/chatglm3-6b"
NEW_GLM = "zai-org/glm-4-9b-chat"
NEW_CHATGLM = "zai-org/chatglm3-6b"

MODELING = b"""from transformers import PretrainedConfig


class ChatGLMConfig(PretrainedConfig):
    model_type = "chatglm"
"""


def repo_files(seed: int, shard_size: int = 48 * 1024) -> dict[str, bytes]:
    files = fake_model_files(shard_size, shards=2, seed=seed)
    files["configuration_chatglm.py"] = MODELING
    return files


def download_old_repos(server: HubServer, cache: Path) -> None:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError

    for seed, repo in enumerate((GLM, CHATGLM)):
        server.add_repo(repo, repo_files(seed))
        snapshot_download(repo, cache_dir=cache)
        with pytest.raises(EntryNotFoundError):  # leaves a .no_exist marker, as in real caches
            hf_hub_download(repo, "generation_config.json", cache_dir=cache)


@pytest.fixture
def old_hub_cache(hub_server, hf_cache) -> Path:  # noqa: F811
    download_old_repos(hub_server, hf_cache)
    hub_server.reset_counters()
    return hf_cache


@pytest.fixture
def state_dir(tmp_path, monkeypatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("AUTOGLM_STATE_DIR", str(state))
    return state


def snapshot_tree(root: Path) -> dict[str, tuple[str, str]]:
    """relative path -> ("file", sha256) | ("link", target text) | ("dir", "")."""
    found: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir", "")
            else:
                found[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def folder(cache: Path, repo_id: str, kind: str = "models") -> Path:
    return cache / f"{kind}--{repo_id.replace('/', '--')}"
