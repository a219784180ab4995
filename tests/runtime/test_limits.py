"""Abuse limits of a real `autoglm serve`: oversized bodies (413) and connections that never
finish their headers (closed after gateway.header_timeout)."""

from __future__ import annotations

import socket

import httpx
import pytest

from autoglm_cli.testing.servers import ServeProcess

from .conftest import write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(module_tmp):
    config = write_config(
        module_tmp / "limits.yaml",
        {
            "model_pool": {"default": "sim"},
            "models": {"sim": {"backend": "simulated", "options": {"output_tokens": 3}}},
            "workers": {"engine": "inline", "count": 1},
            "gateway": {"auth": False, "max_body_bytes": 100_000, "header_timeout": "1s"},
        },
    )
    with ServeProcess(config) as server:
        yield server


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    host, port = "127.0.0.1", server.port
    with socket.create_connection((host, port), timeout=30) as sock:
        # Declares 50 MB and sends none of it: the answer comes from the headers alone.
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n"
        )
        reply = b""
        while chunk := sock.recv(65536):  # the gateway answers and closes: read to the end
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413"), reply
    assert "request_too_large" in reply

    def chunks():  # no Content-Length (chunked): counted as it arrives
        yield b'{"model": "sim", "messages": [{"role": "user", "content": "'
        for _ in range(50):
            yield b"x" * 10_000
        yield b'"}]}'

    chunked = httpx.post(f"{server.url}/v1/chat/completions", content=chunks(), timeout=30)
    assert chunked.status_code == 413, chunked.text
    small = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "sim", "messages": [{"role": "user", "content": "x" * 50_000}]},
        timeout=30,
    )
    assert small.status_code == 200, small.text


def test_a_connection_that_never_finishes_its_headers_is_closed(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        assert sock.recv(1024) == b""  # closed by the server (a hang would raise socket.timeout)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        assert sock.recv(1024) == b""  # one that sends nothing at all, too
    assert httpx.get(f"{server.url}/healthz").status_code == 200
