"""A hub that refuses the token says so, instead of "check connectivity"."""

from __future__ import annotations

from ...errors import NetworkError
from ...redact import redact_url

TOKEN_REMEDY = (
    "Check HF_TOKEN (or `hf auth login`): create a token at https://huggingface.co/settings/tokens, "
    "or unset HF_TOKEN for a public repo."
)


def auth_refused(url: str, status: int | None, *, token: str | None) -> NetworkError | None:
    """The error for an HTTP 401/403 from a hub or mirror; None for any other status."""
    where = redact_url(url)
    if status == 401 and token:
        return NetworkError(
            f"{where} refused the token (HTTP 401): it is invalid or expired.", remedy=TOKEN_REMEDY
        )
    if status == 401:
        return NetworkError(
            f"{where} needs a token (HTTP 401).", remedy="Set HF_TOKEN to a token with access."
        )
    if status == 403:
        return NetworkError(
            f"{where} refused access with this token (HTTP 403): "
            "the repo is gated or the token lacks the permission.",
            remedy="Request access on the repo's page, or use a token with read access to it.",
        )
    return None
