"""The config schema: the original example as is, precise errors, warnings, overrides."""

from __future__ import annotations

import pytest

from autoglm_cli.config import Config, load_config, parse_config, parse_duration
from autoglm_cli.errors import ConfigError, ExitCode

ORIGINAL_EXAMPLE = """\
model_pool: {default: "chatglm3-6b", backup: "qwen-7b"}
scheduler: "priority-based"
dependencies: ["torch>=1.13", "transformers>=4.25"]
connection_pool: {max_connections: 100, idle_timeout: 300s, max_idle_connections: 20}
read_timeout: 60s
log_level: WARN
"""


def test_the_original_example_is_accepted_as_is():
    config = parse_config(ORIGINAL_EXAMPLE, file="config.yaml", environ={})
    assert config.model_pool.default == "chatglm3-6b"
    assert config.model_pool.backup == "qwen-7b"
    assert config.scheduler == "priority-based"
    assert config.dependencies == ["torch>=1.13", "transformers>=4.25"]
    assert config.connection_pool.idle_timeout == 300.0
    assert config.read_timeout == 60.0
    assert config.log_level == "WARN"
    assert config.warnings == ()


def test_a_wrong_type_names_file_line_and_field():
    text = "gateway:\n  host: 127.0.0.1\n  port: eighty\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, file="deploy.yaml", environ={})
    err = info.value
    assert (err.file, err.line, err.field) == ("deploy.yaml", 3, "gateway.port")
    assert "deploy.yaml:3: gateway.port: expected an integer" in err.message
    assert err.exit_code == ExitCode.USAGE


def test_a_bad_choice_lists_the_choices():
    with pytest.raises(ConfigError) as info:
        parse_config("scheduler: fastest\n", file="c.yaml", environ={})
    assert "'static'" in info.value.message and "'priority-based'" in info.value.message
    assert info.value.line == 1


def test_invalid_yaml_names_the_line():
    with pytest.raises(ConfigError) as info:
        parse_config("a: 1\nb: [1, 2\nc: 3\n", file="bad.yaml", environ={})
    assert info.value.file == "bad.yaml"
    assert info.value.line is not None and info.value.line >= 2


def test_unknown_keys_warn_with_their_line_and_are_ignored():
    config = parse_config("log_level: INFO\ngatway:\n  port: 1\n", file="c.yaml", environ={})
    assert config.log_level == "INFO"
    assert len(config.warnings) == 1
    assert config.warnings[0].startswith("c.yaml:2: gatway: unknown key")


def test_nested_models_are_typed():
    config = parse_config(
        "models:\n  glm:\n    source: zai-org/glm-4-9b-chat\n    revision: v1\n", environ={}
    )
    assert config.models["glm"].source == "zai-org/glm-4-9b-chat"
    assert config.models["glm"].revision == "v1"


def test_environment_overrides_single_fields():
    config = parse_config("gateway: {port: 8000}\n", environ={"AUTOGLM_GATEWAY__PORT": "9001"})
    assert config.gateway.port == 9001


@pytest.mark.parametrize(
    ("text", "seconds"), [("300s", 300), ("5m", 300), ("1h", 3600), ("250ms", 0.25), (12, 12), ("1.5s", 1.5)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_precedence_explicit_then_env_then_local_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "autoglm.yaml").write_text("log_level: INFO\n")
    (tmp_path / "env.yaml").write_text("log_level: ERROR\n")
    (tmp_path / "explicit.yaml").write_text("log_level: DEBUG\n")
    assert load_config(environ={}).log_level == "INFO"
    assert load_config(environ={"AUTOGLM_CONFIG": str(tmp_path / "env.yaml")}).log_level == "ERROR"
    explicit = load_config(tmp_path / "explicit.yaml", environ={"AUTOGLM_CONFIG": "env.yaml"})
    assert explicit.log_level == "DEBUG"


def test_no_file_means_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config(environ={}) == Config()


def test_a_missing_explicit_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", environ={})
    assert "not found" in info.value.message


def test_cli_reports_config_errors_with_exit_2(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("workers:\n  max: lots\n")
    result = cli("--config", str(bad), "env-check")
    assert result.exit_code == 2
    assert "bad.yaml:2: workers.max" in result.stderr


# --- bad input: duplicate keys, size, depth, alias bombs -----------------------------------


def test_duplicate_keys_are_an_error_naming_both_lines(tmp_path):
    """A second `gateway:` block used to turn `auth` off without a word."""
    path = tmp_path / "autoglm.yaml"
    path.write_text("gateway:\n  auth: true\n  port: 8000\nlog_level: INFO\ngateway:\n  port: 9000\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    error = caught.value
    assert "duplicate key 'gateway': first on line 1, again on line 5" in error.message
    assert (error.file, error.line, error.exit_code) == (str(path), 5, 2)


def test_duplicate_keys_in_a_nested_mapping_are_an_error():
    with pytest.raises(ConfigError, match="duplicate key 'port': first on line 2, again on line 3"):
        parse_config("gateway:\n  port: 1\n  port: 2\n", environ={})


def test_merge_keys_may_be_overridden():
    text = "base: &b {port: 1, host: h}\ngateway:\n  <<: *b\n  port: 2\n"
    config = parse_config(text, environ={})
    assert config.gateway.port == 2


def test_deep_nesting_is_a_clear_error_not_a_recursion_error():
    with pytest.raises(ConfigError, match="nested more than 32 levels deep") as caught:
        parse_config("[" * 300 + "]" * 300, environ={})
    assert caught.value.exit_code == 2


def test_a_huge_config_file_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "w") as out:
        out.write("moves:\n")
        for i in range(200_000):
            out.write(f"  org/m{i}: org/n{i}\n")
    with pytest.raises(ConfigError, match="the limit is 1024 KiB") as caught:
        load_config(path, environ={})
    assert caught.value.file == str(path)


def test_an_alias_bomb_is_refused():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    text = "\n".join(lines) + "\nmodels:\n  m:\n    options: {bomb: *a8}\n"
    with pytest.raises(ConfigError, match="more than 100000 values"):
        parse_config(text, environ={})


def test_with_overrides_replaces_dotted_fields_and_skips_none():
    from autoglm_cli.config import with_overrides

    config = parse_config("gateway: {port: 1, host: h}\n", environ={})
    changed = with_overrides(config, {"gateway.port": 2, "gateway.host": None, "workers.count": 3})
    assert (changed.gateway.port, changed.gateway.host, changed.workers.count) == (2, "h", 3)
    assert with_overrides(config, {"gateway.port": None}) is config
    with pytest.raises(KeyError):
        with_overrides(config, {"gatewya.port": 1})
