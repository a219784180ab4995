"""Package names that load on first use, and the start-up they save."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

LAZY_PACKAGES = ["autoglm_cli.ops.deploy", "autoglm_cli.ops.checksums"]


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_exported_name_resolves_to_its_home_module(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(module._HOMES)  # the literal list names every export
    for name in module.__all__:
        value = getattr(module, name)
        home = importlib.import_module(f"{package}.{module._HOMES[name]}")
        assert value is getattr(home, name), name


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_an_unknown_name_is_an_attribute_error(package):
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018


def _modules_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(proc.stdout.split())


@pytest.mark.parametrize(
    ("statement", "not_loaded"),
    [
        # health reads the state file; it must not pay for the deploy flow and its targets
        ("import autoglm_cli.ops.deploy.health_target", "autoglm_cli.ops.deploy.flow"),
        # migrate-cache hashes files; the verifier is verify's
        ("import autoglm_cli.ops.cache.engine", "autoglm_cli.ops.checksums.verify"),
        # clone plans with `git ls-remote`; gitpython only once a transfer starts
        ("import autoglm_cli.ops.repo", "git"),
        # fetch-weights plans before it downloads; urllib3 comes with the first request
        ("import autoglm_cli.ops.weights.fetch", "urllib3"),
        # no config file, no YAML parser
        ("from autoglm_cli.config import load_config; load_config(None, environ={})", "yaml"),
    ],
)
def test_a_command_imports_only_what_its_first_step_needs(statement, not_loaded):
    assert not_loaded not in _modules_after(statement)
