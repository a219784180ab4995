"""`autoglm config show` / `config validate`: the effective config and each value's source."""

from __future__ import annotations

CONFIG = """\
gateway:
  port: 8100
  auth: false
weights:
  endpoints: ["https://user:s3cret@mirror.example/"]
models:
  glm: {backend: simulated}
"""


def values(result) -> dict[str, tuple[object, str]]:
    return {v["key"]: (v["value"], v["source"]) for v in result.json["result"]["values"]}


def test_show_names_default_file_line_env_and_flag(cli, tmp_path, monkeypatch):
    (tmp_path / "c.yaml").write_text(CONFIG)
    monkeypatch.setenv("AUTOGLM_WORKERS__COUNT", "3")

    result = cli("config", "show", "--config", "c.yaml", "--set", "gateway.host=0.0.0.0", "--json")

    assert result.exit_code == 0, result.stdout + result.stderr
    shown = values(result)
    assert shown["gateway.port"] == (8100, "c.yaml:2")
    assert shown["gateway.auth"] == (False, "c.yaml:3")
    assert shown["models.glm.backend"] == ("simulated", "c.yaml:7")
    assert shown["models.glm.revision"] == ("main", "default")  # inside the block, but not set there
    assert shown["workers.count"] == (3, "env AUTOGLM_WORKERS__COUNT")
    assert shown["gateway.host"] == ("0.0.0.0", "flag --set gateway.host")
    assert shown["gateway.max_queue"] == (1024, "default")
    assert shown["weights.endpoints"] == (["https://user:***@mirror.example/"], "c.yaml:5")
    assert "s3cret" not in result.stdout


def test_show_as_a_table_fits_the_terminal(cli, tmp_path):
    (tmp_path / "autoglm.yaml").write_text(CONFIG)
    result = cli("config", "show")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].strip() == "config file: autoglm.yaml"
    port = next(line for line in result.stdout.splitlines() if line.startswith("gateway.port "))
    assert port.split() == ["gateway.port", "8100", "line", "2"]


def test_show_without_a_file_is_all_defaults(cli):
    result = cli("--json", "config", "show")
    assert result.json["result"]["file"] is None
    assert {source for _, source in values(result).values()} == {"default"}


def test_validate_a_good_config(cli, tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG + "mystery: 1\n")
    result = cli("config", "validate", "--config", "c.yaml")
    assert result.exit_code == 0
    assert "c.yaml: valid, 1 warning(s)" in result.stdout
    assert "mystery" in result.stderr
    assert cli("config", "validate", "--config", "c.yaml", "--strict").exit_code == 1


def test_validate_a_bad_config_names_the_line(cli, tmp_path):
    (tmp_path / "c.yaml").write_text("gateway:\n  port: eighty\n")
    result = cli("config", "validate", "--config", "c.yaml", "--json")
    assert result.exit_code == 2
    error = result.json["error"]
    assert (error["file"], error["line"], error["field"]) == ("c.yaml", 2, "gateway.port")


def test_validate_refuses_duplicate_keys(cli, tmp_path):
    (tmp_path / "c.yaml").write_text("gateway:\n  auth: true\ngateway:\n  port: 1\n")
    result = cli("config", "validate", "--config", "c.yaml")
    assert result.exit_code == 2
    assert "duplicate key 'gateway': first on line 1, again on line 3" in " ".join(result.stderr.split())


def test_a_bad_set_is_a_usage_error(cli):
    assert cli("config", "show", "--set", "gateway.port").exit_code == 2
    bad_type = cli("config", "show", "--set", "gateway.port=eighty", "--json")
    assert bad_type.exit_code == 2
    assert bad_type.json["error"]["field"] == "gateway.port"
