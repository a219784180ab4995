"""The mapping table: prefixes, templates, reverse lookups and the errors for bad rows."""

from __future__ import annotations

import pytest

from autoglm_cli.errors import UsageError
from autoglm_cli.ops.cache.mapping import MappingRow, MappingTable, parse_map_option


def test_prefix_rows_capture_the_remainder_under_any_placeholder_name():
    assert MappingRow("THUDM/", "zai-org/{name}").apply("THUDM/glm-4-9b-chat") == "zai-org/glm-4-9b-chat"
    assert MappingRow("user:", "profile/{id}").apply("user:42") == "profile/42"
    assert (
        MappingRow("THUDM/chatglm", "zai-org/chatglm-{rest}").apply("THUDM/chatglm3-6b")
        == "zai-org/chatglm-3-6b"
    )
    assert MappingRow("THUDM/", "zai-org/{name}").apply("zai-org/glm") is None
    assert MappingRow("THUDM/", "zai-org/{name}").apply("THUDM/") is None  # the prefix alone is no entry


def test_a_template_without_placeholder_renames_exactly_one_key():
    row = MappingRow("THUDM/chatglm3-6b", "zai-org/chatglm3-6b")
    assert row.apply("THUDM/chatglm3-6b") == "zai-org/chatglm3-6b"
    assert row.apply("THUDM/chatglm3-6b-32k") is None  # never swallowed by a shorter name


def test_reverse_finds_the_old_key_for_dual_reads():
    table = MappingTable.build(
        [MappingRow("THUDM/", "zai-org/{name}"), MappingRow("user:", "profile/{id}", "dir")]
    )
    assert table.old_keys("zai-org/glm-4") == ["THUDM/glm-4"]
    assert table.old_keys("profile/7", "dir") == ["user:7"]
    assert table.old_keys("other/glm-4") == []
    assert MappingRow("a/", "{name}/{name}").reverse("x/x") == "a/x"
    assert MappingRow("a/", "{name}/{name}").reverse("x/y") is None


def test_parse_map_option_and_its_errors():
    assert parse_map_option("THUDM/=zai-org/{name}", kind="hf") == MappingRow(
        "THUDM/", "zai-org/{name}", "hf"
    )
    with pytest.raises(UsageError, match="expected OLD=NEW"):
        parse_map_option("THUDM/", kind="hf")
    with pytest.raises(UsageError, match=r"unknown placeholder\(s\) \{org\}"):
        parse_map_option("THUDM/=zai-org/{org}", kind="hf")
    with pytest.raises(UsageError) as err:
        parse_map_option("THUDM/=zai-org/", kind="hf")
    assert "zai-org/{name}" in err.value.remedy
    with pytest.raises(UsageError, match="old prefix is empty"):
        parse_map_option("=zai-org/{name}", kind="hf")
    with pytest.raises(UsageError, match="bad template"):
        parse_map_option("THUDM/=zai-org/{name", kind="hf")


def test_rows_from_config_keep_their_kind_and_root(tmp_path):
    from autoglm_cli.config import parse_config

    config = parse_config(
        "cache_migrations:\n"
        "  - {old: 'THUDM/', new: 'zai-org/{name}'}\n"
        f"  - {{old: 'user:', new: 'profile/{{id}}', kind: dir, root: '{tmp_path}'}}\n"
    )
    table = MappingTable.from_config(config.cache_migrations)
    assert table.rows == (
        MappingRow("THUDM/", "zai-org/{name}", "hf"),
        MappingRow("user:", "profile/{id}", "dir", str(tmp_path)),
    )
