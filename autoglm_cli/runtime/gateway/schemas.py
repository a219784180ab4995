"""Request bodies of the OpenAI-compatible API.

Unknown fields are accepted and ignored: OpenAI's clients send many.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidRequest


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text":
                raise InvalidRequest(
                    f"content parts of type {part.get('type')!r} are not supported", param="messages"
                )
            parts.append(str(part.get("text", "")))
        return "".join(parts)


class _Generation(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None  # None: model_pool.default
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int | None = Field(1, ge=1)
    seed: int | None = None
    priority: Literal["high", "normal", "low"] | None = None

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        if len(stops) > 4:
            raise InvalidRequest("at most 4 stop sequences are allowed", param="stop")
        return stops

    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class ChatRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1)


class CompletionRequest(_Generation):
    prompt: str | list[str]

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise InvalidRequest("only one prompt per request is supported", param="prompt")
        return self.prompt[0]


class TaskRequest(_Generation):
    """`POST /v1/tasks`: a chat (`messages`) or a completion (`prompt`), run in the background."""

    messages: list[ChatMessage] | None = None
    prompt: str | list[str] | None = None
