"""Real servers for tests and benchmarks: `autoglm serve` as a process, any ASGI app in a thread.

- `ServeProcess`: runs `python -m autoglm_cli serve --config FILE ...` and waits
  until `/readyz` answers 200 (or the process dies, with its stderr in the error).
- `ThreadedServer`: a uvicorn server in a background thread of this process, for
  small upstream stand-ins and in-process gateways.
- `instant_upstream_app()`: a bare ASGI app that answers every OpenAI chat or
  completion request at once (no model, no framework): the "instant upstream"
  of the gateway-overhead benchmark.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_http(url: str, *, timeout: float = 60.0, status: int = 200, alive=None) -> None:
    """Poll `url` until it answers `status`; `alive()` returning False stops early."""
    import httpx

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"the server exited before {url} answered")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == status:
                return
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} within {timeout} s (last: {last})")


class ServeProcess:
    """`autoglm serve` in a child process; a context manager that stops it with SIGINT."""

    def __init__(
        self,
        config: Path,
        *,
        port: int | None = None,
        keys_file: Path | None = None,
        extra: list[str] | None = None,
        env: dict | None = None,
        log: Path | None = None,
        ready_timeout: float = 90.0,
        wait_ready: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            sys.executable,
            "-m",
            "autoglm_cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(self.port),
        ]
        if keys_file is not None:
            args += ["--keys-file", str(keys_file)]
        self.args = args + list(extra or [])
        self.env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        self.log = log or Path(config).with_suffix(f".{self.port}.log")
        self.ready_timeout = ready_timeout
        self.wait_ready = wait_ready
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServeProcess:
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.args, stdout=self._log_file, stderr=subprocess.STDOUT, env=self.env)
        if self.wait_ready:
            try:
                wait_http(
                    f"{self.url}/readyz", timeout=self.ready_timeout, alive=lambda: self.proc.poll() is None
                )
            except (RuntimeError, TimeoutError) as exc:
                self.stop()
                raise RuntimeError(f"{exc}\n--- serve output ---\n{self.output()[-4000:]}") from None
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.proc.returncode

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ThreadedServer:
    """A uvicorn server for `app` in a daemon thread on 127.0.0.1 (lifespan included)."""

    def __init__(self, app, *, port: int | None = None, log_level: str = "warning") -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level=log_level,
                access_log=False,
                timeout_graceful_shutdown=5,
            )
        )
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def start(self, timeout: float = 60.0) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server thread exited during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


async def answer_lifespan(receive, send) -> None:
    """The ASGI lifespan protocol for a bare test app: start-up and shut-down complete at once."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive) -> bytes:
    """A request's whole body, from its ASGI `http.request` messages."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


def instant_upstream_app(model: str = "instant"):
    """An OpenAI-compatible ASGI app that answers at once: GET /v1/models, POST chat / completions."""
    chat = json.dumps(
        {
            "id": "chatcmpl-instant",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()
    completion = json.dumps(
        {
            "id": "cmpl-instant",
            "object": "text_completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "text": "ok", "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()
    models = json.dumps(
        {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "test"}]}
    ).encode()

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        await read_body(receive)
        path = scope["path"]
        body = (
            chat
            if path.endswith("/chat/completions")
            else completion
            if path.endswith("/completions")
            else models
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
