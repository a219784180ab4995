import pytest

from autoglm_cli.redact import redact, redact_url


def test_url_password_is_masked_and_user_kept():
    assert redact_url("https://bob:s3cret@github.com/x.git") == "https://bob:***@github.com/x.git"


def test_url_token_as_user_is_masked():
    assert redact_url("https://ghp_abcdef123456@github.com/x.git") == "https://***@github.com/x.git"


def test_plain_url_is_unchanged():
    assert redact_url("https://github.com/zai-org/x.git") == "https://github.com/zai-org/x.git"


def test_free_text_is_scrubbed():
    hf_token = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"  # the real shape: hf_ + 34 letters
    text = f"fetch https://u:tok@h/r failed; HF_TOKEN={hf_token}; key ak_" + "x" * 43
    out = redact(text)
    assert "tok@" not in out and hf_token not in out and "x" * 43 not in out
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer ***"


def test_names_that_merely_start_like_tokens_are_kept():
    text = "No module named 'autoglm_cli.runtime.backends.hf_transformers'; see ak_setup"
    assert redact(text) == text


@pytest.mark.timeout(60)  # linear: well under a second each; the old pattern took hours on 4 MB
@pytest.mark.parametrize(
    "text",
    [
        "a" * 4_000_000,  # letters: every position could start a scheme
        "a://" + "b" * 4_000_000,  # a scheme, then user-info that never ends in `@`
        "ab://x" * 700_000,  # many schemes, no credentials
        "x" * 2_000_000 + "://" + "y" * 2_000_000,
        "Bearer" + " " * 4_000_000,
    ],
    ids=["letters", "endless-userinfo", "many-schemes", "long-scheme", "bearer-spaces"],
)
def test_redact_is_linear_on_megabytes(text):
    assert redact(text) == text  # nothing to mask, and it returns


def test_redact_still_masks_credentials_in_megabytes():
    text = "a" * 1_000_000 + " https://user:secret@host/x " + "b" * 1_000_000
    assert "secret" not in redact(text)
    assert "https://user:***@host/x" in redact(text)
