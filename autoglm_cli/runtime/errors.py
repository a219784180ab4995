"""Errors of the running service, each mapped to an HTTP status and OpenAI's error shape.

These never reach the CLI's error tree: the gateway turns them into
`{"error": {"message", "type", "param", "code"}}` responses.
"""

from __future__ import annotations


class ApiError(Exception):
    """A request the service answers with an error response."""

    status = 500
    type = "server_error"
    code: str | None = None
    counted = False  # in autoglm_request_errors_total already (Metrics.count_error)

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def to_dict(self) -> dict:
        """Picklable form, for errors that cross a Dask worker boundary."""
        return {
            "message": self.message,
            "status": self.status,
            "type": self.type,
            "code": self.code,
            "param": self.param,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ApiError:
        return cls(
            data["message"],
            status=data.get("status"),
            type=data.get("type"),
            code=data.get("code"),
            param=data.get("param"),
        )


class InvalidRequest(ApiError):
    status = 400
    type = "invalid_request_error"


class ServiceUnavailable(ApiError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class NodeFailure(Exception):
    """The node could not run the request (process died, unreachable, failed): try another node."""


class Cancelled(Exception):
    """The request was cancelled (DELETE /v1/tasks/{id}, or the client went away)."""
