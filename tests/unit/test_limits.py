"""The router's limits, each hit on purpose: its documented status, and JSON naming the
limit's setting. Bodies are generated lazily and counted as the router reads them, so a
refused body is shown not to have been read (what keeps the router's memory flat)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import repeat

import httpx
import pytest
import uvicorn

from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from tests.asgi import served
from tests.fakeshard import connect_to
from tests.unit.test_router import SHARDS, fake_shards

MB = 1024 * 1024
CHUNK = 64 * 1024
LIMIT = 16_384


class Body:
    """``size`` bytes in chunks, made as they are read; ``read`` counts them. With
    ``stall``, the body stops after its first chunk and never ends."""

    def __init__(self, size: int, chunk: int = CHUNK, stall: bool = False) -> None:
        self.size, self.chunk, self.stall, self.read = size, chunk, stall, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in repeat(b"x" * self.chunk, self.size // self.chunk):
            self.read += len(chunk)
            yield chunk
            if self.stall:
                await asyncio.Event().wait()


async def post(body: Body, headers: dict[str, str] | None = None) -> httpx.Response:
    settings = RouterSettings(max_body=LIMIT, body_timeout_s=0.2, rank_refresh_s=0)
    app = create_app(ShardMap(SHARDS), settings, connect_to(fake_shards()))
    async with served(app) as client:
        return await client.post("/alerts", content=body, headers=headers)


def names_the_limit(response: httpx.Response, status: int, limit: str) -> bool:
    body = response.json()
    return (response.status_code, body["code"], body["limit"]) == (status, "limit_exceeded", limit)


async def test_body_over_limit_by_content_length_is_413_before_a_byte_is_read() -> None:
    body = Body(300 * MB)
    response = await post(body, {"Content-Length": str(300 * MB)})
    assert names_the_limit(response, 413, "FEDERATION_MAX_BODY")
    assert (body.read, response.headers["connection"]) == (0, "close")


async def test_chunked_body_over_limit_is_413_once_it_passes_the_limit() -> None:
    body = Body(300 * MB)
    response = await post(body)  # no Content-Length: sent chunked
    assert names_the_limit(response, 413, "FEDERATION_MAX_BODY")
    assert body.read <= LIMIT + CHUNK


async def test_body_that_stops_arriving_is_408() -> None:
    response = await post(Body(100, chunk=4, stall=True), {"Content-Length": "100"})
    assert names_the_limit(response, 408, "FEDERATION_BODY_TIMEOUT")
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize("length", ["ten", "-1", "1e3"], ids=["word", "negative", "exponent"])
async def test_malformed_content_length_is_400_naming_it(length: str) -> None:
    response = await post(Body(0), {"Content-Length": length})
    assert (response.status_code, response.json()["parameter"]) == (400, "Content-Length")


@pytest.mark.parametrize(
    ("rows", "status"), [(2, 422), (3, 200)], ids=["over-the-limit", "at-the-limit"]
)
async def test_strict_answer_over_its_row_limit_is_422_naming_it(rows: int, status: int) -> None:
    settings = RouterSettings(strict_max_rows=rows, rank_refresh_s=0)  # 3 shards, 1 price each
    app = create_app(ShardMap(SHARDS), settings, connect_to(fake_shards()))
    async with served(app) as client:
        response = await client.get("/btcusd?strict=true")
    assert response.status_code == status
    if status == 422:
        assert names_the_limit(response, 422, "FEDERATION_STRICT_MAX_ROWS")


@asynccontextmanager
async def uvicorn_serving() -> AsyncIterator[int]:
    """The router on a real uvicorn server on loopback (a limit is also the server's
    business: it must close the connection, not read on); yields its port."""
    settings = RouterSettings(max_body=LIMIT, body_timeout_s=0.2, rank_refresh_s=0)
    app = create_app(ShardMap(SHARDS), settings, connect_to(fake_shards()))
    listening = socket.create_server(("127.0.0.1", 0))  # connections wait in its backlog
    config = uvicorn.Config(app, log_config=None, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield listening.getsockname()[1]
    finally:
        server.should_exit = True
        await serving
        listening.close()


async def raw_post(port: int, head: str, body: bytes) -> bytes:
    """What the server sends back to a POST of ``head`` and ``body`` before it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /alerts HTTP/1.1\r\nHost: router\r\n{head}\r\n".encode() + body)
    answer = await reader.read()  # to the end: the server closes the connection
    writer.close()
    return answer


@pytest.mark.parametrize(
    ("head", "body", "status"),
    [
        (f"Content-Length: {300 * MB}\r\n", b"", b"413"),
        ("Content-Length: 100\r\n", b'{"we', b"408"),
    ],
    ids=["declared-300mb-never-sent", "stalled"],
)
async def test_real_server_answers_and_closes_without_the_body(
    head: str, body: bytes, status: bytes
) -> None:
    async with uvicorn_serving() as port:
        answer = await raw_post(port, head, body)
    assert answer.split(b" ", 2)[1] == status
    assert b"limit_exceeded" in answer
