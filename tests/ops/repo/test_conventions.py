from autoglm_cli.ops.repo.conventions import branch_warnings, follows_convention


def test_the_project_convention():
    for name in ("main", "feature/login", "bugfix/oom-on-load", "hotfix/1.2.1", "release/2.0", "feature/a/b"):
        assert follows_convention(name), name
    for name in ("master", "dev", "Feature/x", "feature", "my-branch", "releases/1.0"):
        assert not follows_convention(name), name


def test_warnings_name_each_branch_outside_it_in_order():
    warnings = branch_warnings(["main", "dev", "feature/x", "wip"])
    assert len(warnings) == 2
    assert "`dev`" in warnings[0] and "`wip`" in warnings[1]
    assert "feature/*" in warnings[0]


def test_custom_patterns_and_none():
    assert branch_warnings(["master"], ["master", "topic/*"]) == ()
    assert branch_warnings(["anything"], []) == ()
