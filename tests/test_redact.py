from autoglm_cli.redact import redact, redact_url


def test_url_password_is_masked_and_user_kept():
    assert redact_url("https://bob:s3cret@github.com/x.git") == "https://bob:***@github.com/x.git"


def test_url_token_as_user_is_masked():
    assert redact_url("https://ghp_abcdef123456@github.com/x.git") == "https://***@github.com/x.git"


def test_plain_url_is_unchanged():
    assert redact_url("https://github.com/zai-org/x.git") == "https://github.com/zai-org/x.git"


def test_free_text_is_scrubbed():
    text = "fetch https://u:tok@h/r failed; HF_TOKEN=hf_abcdefghijklmnop; key ak_" + "x" * 40
    out = redact(text)
    assert "tok@" not in out and "hf_abcdefghijklmnop" not in out and "x" * 40 not in out
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
