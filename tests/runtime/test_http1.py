"""The gateway's HTTP/1.1 upstream pool (`runtime/backends/http1.py`) against real servers:
a uvicorn app for the ordinary answers, raw asyncio servers for what uvicorn never does
(closing an idle connection, a close-delimited body, garbage, silence)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from autoglm_cli.runtime.backends.http1 import (
    ConnectFailed,
    Http1Pool,
    PoolTimedOut,
    ProtocolFailure,
    ReadTimedOut,
)
from autoglm_cli.testing.servers import ThreadedServer, free_port, read_body


async def _echo_app(scope, receive, send):
    if scope["type"] == "lifespan":
        from autoglm_cli.testing.servers import answer_lifespan

        await answer_lifespan(receive, send)
        return
    body = await read_body(receive)
    if scope["path"] == "/v1/stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        for n in range(3):
            await send({"type": "http.response.body", "body": f"data: {n}\n\n".encode(), "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/v1/big":
        payload = b"x" * (3 << 20)  # past the pool's high-water mark: reading pauses and resumes
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": payload})
        return
    answer = json.dumps(
        {
            "method": scope["method"],
            "path": scope["path"],
            "body": body.decode(),
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
            "client_port": scope["client"][1],
        }
    ).encode()
    status = 404 if scope["path"] == "/v1/missing" else 200
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def echo():
    with ThreadedServer(_echo_app) as server:
        yield server.url


def run(coro):
    return asyncio.run(coro)


def test_a_request_arrives_as_sent_and_its_answer_comes_back(echo):
    async def main():
        pool = Http1Pool(f"{echo}/v1")
        status, headers, body = await pool.request(
            "POST", "/chat/completions", headers=[(b"X-Test", b"1")], content=b'{"a": 1}'
        )
        await pool.aclose()
        return status, headers, json.loads(body)

    status, headers, seen = run(main())
    assert status == 200 and headers["content-type"] == "application/json"
    assert seen["method"] == "POST" and seen["path"] == "/v1/chat/completions"
    assert seen["body"] == '{"a": 1}'
    assert seen["headers"]["x-test"] == "1" and seen["headers"]["content-length"] == "8"
    assert seen["headers"]["host"] == echo.removeprefix("http://")


def test_an_error_status_is_an_answer_not_an_exception(echo):
    async def main():
        pool = Http1Pool(echo)
        try:
            return await pool.request("GET", "/v1/missing")
        finally:
            await pool.aclose()

    status, _, _ = run(main())
    assert status == 404


def test_keep_alive_reuses_one_connection(echo):
    async def main():
        pool = Http1Pool(echo)
        ports = [json.loads((await pool.request("GET", "/v1/x"))[2])["client_port"] for _ in range(5)]
        await pool.aclose()
        return ports

    assert len(set(run(main()))) == 1


def test_concurrent_requests_open_connections_up_to_the_limit(echo):
    async def main():
        pool = Http1Pool(echo, max_connections=2)
        answers = await asyncio.gather(*(pool.request("GET", "/v1/x") for _ in range(6)))
        await pool.aclose()
        return [json.loads(body)["client_port"] for _, _, body in answers]

    ports = run(main())
    assert len(ports) == 6 and len(set(ports)) <= 2


def test_a_stream_yields_chunks_as_they_come(echo):
    async def main():
        pool = Http1Pool(echo)
        async with pool.stream("GET", "/v1/stream") as response:
            chunks = [chunk async for chunk in response.aiter_bytes()]
        await pool.aclose()
        return response.status, chunks

    status, chunks = run(main())
    assert status == 200
    assert b"".join(chunks) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert len(chunks) >= 2  # not buffered to the end


def test_a_big_body_arrives_whole_past_the_high_water_mark(echo):
    async def main():
        pool = Http1Pool(echo)

        async def slow_read():
            async with pool.stream("GET", "/v1/big") as response:
                total = 0
                async for chunk in response.aiter_bytes():
                    total += len(chunk)
                    await asyncio.sleep(0)  # a slow reader: the socket is paused meanwhile
                return total

        total = await slow_read()
        again = await pool.request("GET", "/v1/x")  # the connection is still good
        await pool.aclose()
        return total, again[0]

    assert run(main()) == (3 << 20, 200)


@contextlib.asynccontextmanager
async def raw_server(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def ask_raw(handler, requests: int = 1, *, pause: float = 0.0) -> list[tuple[int, dict, bytes]]:
    """`requests` GETs in a row on one pool against a raw asyncio server running `handler`
    (`pause` seconds between them); their answers. Errors propagate; the pool is closed."""

    async def main():
        async with raw_server(handler) as url:
            pool = Http1Pool(url)
            answers = []
            try:
                for n in range(requests):
                    if n:
                        await asyncio.sleep(pause)
                    answers.append(await pool.request("GET", "/"))
            finally:
                await pool.aclose()
            return answers

    return run(main())


def test_an_idle_connection_the_server_closed_is_not_reused():
    connections = []

    async def handler(reader, writer):
        connections.append(writer)
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # keep-alive announced, then the server closes it (its idle timeout)

    first, second = ask_raw(handler, 2, pause=0.05)
    assert first[2] == second[2] == b"ok"
    assert len(connections) == 2


def test_a_reused_connection_closed_while_the_request_was_sent_is_retried_once():
    served = []

    async def handler(reader, writer):
        await _read_request(reader)
        served.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await _read_request(reader)  # the second request on this connection: dropped unanswered
        writer.close()

    assert ask_raw(handler, 2)[1][2] == b"ok"
    assert len(served) == 2


def test_a_close_delimited_body_ends_with_the_connection():
    async def handler(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()

    assert ask_raw(handler)[0][2] == b"until the end"


def test_a_connection_closed_mid_body_is_a_protocol_failure():
    async def handler(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    with pytest.raises(ProtocolFailure, match="mid-answer"):
        ask_raw(handler)


def test_garbage_is_a_protocol_failure():
    async def handler(reader, writer):
        await _read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()

    with pytest.raises(ProtocolFailure, match="not HTTP/1.1"):
        ask_raw(handler)


def test_silence_is_a_read_timeout_and_the_connection_is_dropped():
    async def handler(reader, writer):
        await _read_request(reader)
        await asyncio.sleep(5)

    async def main():
        async with raw_server(handler) as url:
            pool = Http1Pool(url)
            try:
                await pool.request("GET", "/", read_timeout=0.2)
            finally:
                idle = len(pool._idle)
                await pool.aclose()
                assert idle == 0

    with pytest.raises(ReadTimedOut, match="0.2 s"):
        run(main())


def test_nobody_listening_is_connect_failed():
    async def main():
        pool = Http1Pool(f"http://127.0.0.1:{free_port()}")
        await pool.request("GET", "/")

    with pytest.raises(ConnectFailed, match="refused"):
        run(main())


def test_no_free_connection_in_time_is_pool_timed_out():
    async def handler(reader, writer):
        await _read_request(reader)
        await asyncio.sleep(2)

    async def main():
        async with raw_server(handler) as url:
            pool = Http1Pool(url, max_connections=1)
            hung = asyncio.create_task(pool.request("GET", "/", read_timeout=5))
            await asyncio.sleep(0.05)
            try:
                await pool.request("GET", "/", pool_timeout=0.1)
            finally:
                hung.cancel()
                await pool.aclose()

    with pytest.raises(PoolTimedOut):
        run(main())


def test_a_cancelled_request_frees_its_slot_and_drops_its_connection():
    async def handler(reader, writer):
        await _read_request(reader)
        await asyncio.sleep(2)

    async def main():
        async with raw_server(handler) as url:
            pool = Http1Pool(url, max_connections=1)
            hung = asyncio.create_task(pool.request("GET", "/"))
            await asyncio.sleep(0.05)
            hung.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hung
            free = not pool._slots.locked()
            idle = len(pool._idle)
            await pool.aclose()
            return free, idle

    assert run(main()) == (True, 0)
