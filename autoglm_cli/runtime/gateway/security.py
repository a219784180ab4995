"""The auth dependency: bearer key -> 401 / 403 / 429, or the key's record."""

from __future__ import annotations

import math

from fastapi import Request

from ..auth import ANONYMOUS, KeyRecord
from ..errors import ApiError


def _state(request: Request):
    return request.app.state.gateway


def require(permission: str):
    """A FastAPI dependency: the caller's key, which must hold `permission`."""

    async def dependency(request: Request) -> KeyRecord:  # async: runs on the loop, no thread hop
        state = _state(request)
        if not state.auth:
            return ANONYMOUS
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                "You didn't provide an API key. Send it as `Authorization: Bearer ak_...` "
                "(create one with `autoglm keys create`).",
                status=401,
                type="invalid_request_error",
                code="missing_api_key",
            )
        record = state.authenticator.authenticate(token)
        if record is None:
            raise ApiError(
                "Incorrect API key provided.",
                status=401,
                type="invalid_request_error",
                code="invalid_api_key",
            )
        if not record.allows(permission):
            raise ApiError(
                f"This API key lacks the `{permission}` permission.",
                status=403,
                type="permission_error",
                code="insufficient_permissions",
            )
        wait, bucket = state.limiter.check(record)
        if wait > 0:
            raise ApiError(
                f"Rate limit reached: {record.rate_limit} requests per minute for this key.",
                status=429,
                type="requests",
                code="rate_limit_exceeded",
                headers={
                    "Retry-After": str(max(1, math.ceil(wait))),
                    "x-ratelimit-limit-requests": str(record.rate_limit),
                    "x-ratelimit-remaining-requests": "0",
                },
            )
        request.state.rate_remaining = bucket.remaining() if bucket is not None else None
        return record

    return dependency


def check_model(record: KeyRecord, model: str) -> None:
    if not record.allows_model(model):
        raise ApiError(
            f"This API key may not use the model `{model}`.",
            status=403,
            type="permission_error",
            code="model_not_allowed",
            param="model",
        )
