"""The trust_remote_code module cache (org in the module path) moves with the hub cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoglm_cli.ops.cache.modules import sanitize, unsanitize
from tests.ops.cache.conftest import GLM, MODELING, NEW_GLM

MAP = "THUDM/=zai-org/{name}"


def test_sanitize_matches_transformers_rules():
    assert sanitize("zai-org") == "zai_hyphen_org"
    assert sanitize("glm-4.5") == "glm_hyphen_4_dot_5"
    assert sanitize("4bit") == "_4bit"
    for name in ("zai-org", "glm-4.5", "4bit", "THUDM", "chatglm3_6b"):
        assert unsanitize(sanitize(name)) == name


def _module_tree(root: Path, org: str, name: str, commit: str) -> Path:
    """The layout transformers writes: __init__.py at every level, code under the commit."""
    package = root / "transformers_modules"
    leaf = package / org / name / commit
    leaf.mkdir(parents=True)
    for level in (package, package / org, package / org / name, leaf):
        (level / "__init__.py").touch()
    (leaf / "configuration_chatglm.py").write_bytes(MODELING)
    (leaf / "__pycache__").mkdir()
    (leaf / "__pycache__" / "configuration_chatglm.cpython-311.pyc").write_bytes(b"stale")
    return leaf


@pytest.mark.parametrize(
    ("old_parts", "new_parts"),
    [
        (
            ("THUDM", "glm_hyphen_4_hyphen_9b_hyphen_chat"),
            ("zai_hyphen_org", "glm_hyphen_4_hyphen_9b_hyphen_chat"),
        ),
        (("THUDM", "glm-4-9b-chat"), ("zai-org", "glm-4-9b-chat")),  # transformers < 4.5x: raw names
    ],
)
def test_module_folders_move_in_the_style_they_were_written(cli, tmp_path, state_dir, old_parts, new_parts):
    modules = tmp_path / "modules"
    commit = "c" * 40
    old_leaf = _module_tree(modules, *old_parts, commit)
    result = cli(
        "migrate-cache", "--hub-cache", tmp_path / "hub", "--modules-cache", modules, "--map", MAP, "--yes"
    )
    assert result.exit_code == 0, result.stderr

    package = modules / "transformers_modules"
    new_leaf = package / new_parts[0] / new_parts[1] / commit
    assert (new_leaf / "configuration_chatglm.py").read_bytes() == MODELING
    assert (new_leaf / "configuration_chatglm.py").stat().st_ino == (
        old_leaf / "configuration_chatglm.py"
    ).stat().st_ino
    for level in (package / new_parts[0], new_leaf.parent, new_leaf):
        assert (level / "__init__.py").is_file()
    assert not (new_leaf / "__pycache__").exists()
    assert (old_leaf / "configuration_chatglm.py").read_bytes() == MODELING  # old module path still there


@pytest.mark.slow
@pytest.mark.transformers
def test_transformers_loads_the_migrated_module_without_rewriting_it(old_hub_cache, tmp_path, state_dir):
    """transformers itself writes the module cache under the old id and reuses the migrated one."""
    pytest.importorskip("transformers")
    modules = tmp_path / "modules"
    env = {
        **os.environ,
        "HF_MODULES_CACHE": str(modules),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(old_hub_cache),
    }
    load = (
        "import json, sys\n"
        "from transformers.dynamic_module_utils import get_cached_module_file\n"
        "path = get_cached_module_file(sys.argv[1], 'configuration_chatglm.py', local_files_only=True)\n"
        "print(json.dumps(path))\n"
    )

    def module_path(repo: str) -> Path:
        out = subprocess.run(
            [sys.executable, "-c", load, repo], env=env, capture_output=True, text=True, check=True
        )
        return modules / json.loads(out.stdout.strip().splitlines()[-1])

    old_module = module_path(GLM)
    assert old_module.read_bytes() == MODELING

    migrate = [sys.executable, "-m", "autoglm_cli", "migrate-cache", "--map", MAP, "--yes"]
    subprocess.run(migrate, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    new_module = (
        modules
        / "transformers_modules"
        / "zai_hyphen_org"
        / old_module.relative_to(modules / "transformers_modules" / "THUDM")
    )
    assert new_module.read_bytes() == MODELING
    inode = new_module.stat().st_ino

    assert module_path(NEW_GLM) == new_module
    assert new_module.stat().st_ino == inode  # transformers found it in place: nothing re-copied
