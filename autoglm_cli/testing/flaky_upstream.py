"""An OpenAI-speaking upstream that fails on chosen requests, for fault tests and bench_chaos.

`FlakyUpstream(fail_every=40)` answers 500 (`{"error": {"message": "poisoned
request", "code": "upstream_poison"}}`) to every chat or completion whose prompt
ends in a number divisible by `fail_every` (the request's own error: the same
request fails every time), and a short answer (JSON or SSE) to the others.
`broken = True` makes it answer 500 to every request (a sick endpoint), while
`GET /v1/models` still answers (the process is up). A bare ASGI app: run it with
`servers.ThreadedServer`.
"""

from __future__ import annotations

import json

WORDS = ["upstream", "answer", "for", "you"]


class FlakyUpstream:
    def __init__(self, *, fail_every: int = 0, model: str = "up") -> None:
        self.fail_every = fail_every
        self.model = model
        self.broken = False
        self.calls = 0
        self.failed = 0

    def poisoned(self, text: str) -> bool:
        last = text.rsplit(" ", 1)[-1]
        return self.fail_every > 0 and last.isdigit() and int(last) % self.fail_every == 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                done = message["type"] == "lifespan.shutdown"
                await send({"type": message["type"] + ".complete"})
                if done:
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "GET":
            models = {"object": "list", "data": [{"id": self.model, "object": "model"}]}
            return await _json(send, 200, models)
        self.calls += 1
        request = json.loads(body or b"{}")
        if "messages" in request:
            text = " ".join(str(m.get("content", "")) for m in request["messages"])
        else:
            text = str(request.get("prompt", ""))
        if self.broken or self.poisoned(text):
            self.failed += 1
            error = {"message": "poisoned request", "type": "server_error", "code": "upstream_poison"}
            return await _json(send, 500, {"error": error})
        chat = "messages" in request
        if request.get("stream"):
            return await self._stream(send, chat)
        choice = (
            {
                "index": 0,
                "message": {"role": "assistant", "content": " ".join(WORDS)},
                "finish_reason": "stop",
            }
            if chat
            else {"index": 0, "text": " ".join(WORDS), "finish_reason": "stop"}
        )
        reply = {
            "id": "up-1",
            "object": "chat.completion" if chat else "text_completion",
            "created": 0,
            "model": self.model,
            "choices": [choice],
            "usage": {"prompt_tokens": 2, "completion_tokens": len(WORDS), "total_tokens": 2 + len(WORDS)},
        }
        return await _json(send, 200, reply)

    async def _stream(self, send, chat: bool) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, word in enumerate(WORDS):
            piece = word if i == 0 else " " + word
            choice = (
                {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                if chat
                else {"index": 0, "text": piece, "finish_reason": None}
            )
            await send(
                {"type": "http.response.body", "body": _event(self._chunk(chat, choice)), "more_body": True}
            )
        last = (
            {"index": 0, "delta": {}, "finish_reason": "stop"}
            if chat
            else {"index": 0, "text": "", "finish_reason": "stop"}
        )
        tail = _event(self._chunk(chat, last)) + b"data: [DONE]\n\n"
        await send({"type": "http.response.body", "body": tail})

    def _chunk(self, chat: bool, choice: dict) -> dict:
        kind = "chat.completion.chunk" if chat else "text_completion"
        return {"id": "up-1", "object": kind, "created": 0, "model": self.model, "choices": [choice]}


def _event(data: dict) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


async def _json(send, status: int, data: dict) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
