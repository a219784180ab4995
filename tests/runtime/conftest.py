"""Fixtures for the runtime: keys files, configs, `autoglm serve` processes, in-process gateways."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from autoglm_cli.runtime.auth import KeyStore


@dataclass
class Keys:
    file: Path
    full: str
    read_only: str
    limited: str  # 2 requests per minute
    other_model: str  # may use only the model "other"


def make_keys(path: Path) -> Keys:
    store = KeyStore(path)
    return Keys(
        file=path,
        full=store.create(name="full")[1],
        read_only=store.create(name="reader", permissions=("model:read",))[1],
        limited=store.create(name="limited", rate_limit=2)[1],
        other_model=store.create(name="other", models=("other",))[1],
    )


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request) -> Path:
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def keys(module_tmp) -> Keys:
    return make_keys(module_tmp / "keys.json")


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
