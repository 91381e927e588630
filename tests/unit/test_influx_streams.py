"""The shard client's chunked answers read through aiohttp (the router's price streams):
lines as sent however the body is cut, the shard's errors as the httpx2 path tells them,
the pool's books, and no proxy from the environment, on a real local HTTP server."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx2 as httpx
import msgpack
import orjson
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from federation.core.errors import ShardError, ShardRejected, ShardUnavailable
from federation.core.influx import InfluxClient, http_for_shards, pool_status
from federation.core.influxql import series_query
from federation.core.shardmap import Shard


@pytest.fixture
async def streams() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client(url: str, streams: aiohttp.ClientSession, timeout: float = 5.0) -> InfluxClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(599)))
    return InfluxClient(Shard("shard-a", url), http, "crypto", timeout=timeout, streams=streams)


def chunk(values: list[list[object]]) -> bytes:
    series = {"name": "price", "columns": ["time", "price", "exchange"], "values": values}
    return orjson.dumps({"results": [{"statement_id": 0, "series": [series]}]})


LINES = [chunk([[1, 1.5, "a"], [2, 2.5, "b"]]), chunk([[3, 3.5, "a"]])]


@pytest.mark.parametrize("piece", [1, 7, 10_000], ids=["bytes", "7", "whole"])
async def test_stream_lines_arrive_as_sent_cut_anywhere(
    httpserver: HTTPServer, streams: aiohttp.ClientSession, piece: int
) -> None:
    body = b"\n".join(LINES) + b"\n\n"

    def pieces() -> Iterator[bytes]:
        yield from (body[i : i + piece] for i in range(0, len(body), piece))

    httpserver.expect_request("/query").respond_with_response(Response(pieces()))
    lines = [
        line async for line in client(httpserver.url_for(""), streams).query_lines(series_query())
    ]
    assert lines == LINES


async def test_stream_asks_chunked_epoch_and_identity(
    httpserver: HTTPServer, streams: aiohttp.ClientSession
) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(b"")

    httpserver.expect_request("/query").respond_with_handler(handler)
    _ = [x async for x in client(httpserver.url_for(""), streams).query_lines(series_query())]
    args = seen[0].args
    assert (args["db"], args["chunked"], args["epoch"], args["q"]) == (
        "crypto",
        "true",
        "ms",
        series_query().text,
    )
    assert seen[0].headers["Accept-Encoding"] == "identity"


@pytest.mark.parametrize(
    ("content_type", "body", "chunks"),
    [
        ("application/x-msgpack", b"".join(map(msgpack.packb, [{"a": 1}, {"b": [2.5]}])), 2),
        ("application/json", b"\n".join(LINES), len(LINES)),
    ],
    ids=["msgpack", "json-anyway"],
)
async def test_packed_stream_asks_for_msgpack_and_splits_what_comes(
    httpserver: HTTPServer,
    streams: aiohttp.ClientSession,
    content_type: str,
    body: bytes,
    chunks: int,
) -> None:
    httpserver.expect_request(
        "/query", headers={"Accept": "application/x-msgpack"}
    ).respond_with_data(body, content_type=content_type)
    got = [x async for x in client(httpserver.url_for(""), streams).query_packed(series_query())]
    assert (len(got), b"".join(got)) == (chunks, body.replace(b"\n", b""))


async def test_packed_stream_error_in_msgpack_names_its_reason(
    httpserver: HTTPServer, streams: aiohttp.ClientSession
) -> None:
    body = msgpack.packb({"error": "error parsing query: found SELEC"})
    httpserver.expect_request("/query").respond_with_data(
        body, status=400, content_type="application/x-msgpack"
    )
    with pytest.raises(ShardRejected, match="400: error parsing query: found SELEC"):
        _ = [x async for x in client(httpserver.url_for(""), streams).query_packed(series_query())]


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (500, b"panic", ShardUnavailable, "500: panic"),
        (404, b'{"error":"database not found: \\"crypto\\""}', ShardRejected, "database not found"),
        (401, b'{"error":"authorization failed"}', ShardRejected, "401: authorization failed"),
    ],
    ids=["500", "404", "401"],
)
async def test_stream_errors_name_the_shard_and_reason(
    httpserver: HTTPServer,
    streams: aiohttp.ClientSession,
    status: int,
    body: bytes,
    error: type[ShardError],
    text: str,
) -> None:
    httpserver.expect_request("/query").respond_with_data(body, status=status)
    with pytest.raises(error, match=text) as raised:
        _ = [x async for x in client(httpserver.url_for(""), streams).query_lines(series_query())]
    assert raised.value.shard == "shard-a"


async def test_stream_to_a_closed_port_is_unavailable(streams: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ShardUnavailable, match="failed"):
        _ = [
            x async for x in client(f"http://127.0.0.1:{port}", streams).query_lines(series_query())
        ]


def pausing(pause_s: float, after: list[bytes]) -> Response:
    """An answer that sends its first line, then nothing for ``pause_s``, then ``after``."""

    def body() -> Iterator[bytes]:
        yield LINES[0] + b"\n"
        time.sleep(pause_s)
        yield from (line + b"\n" for line in after)

    return Response(body())


async def test_stream_that_stalls_past_the_timeout_is_unavailable(
    httpserver: HTTPServer, streams: aiohttp.ClientSession
) -> None:
    httpserver.expect_request("/query").respond_with_response(pausing(1.0, LINES[1:]))
    lines = client(httpserver.url_for(""), streams, timeout=0.3).query_lines(series_query())
    assert await anext(lines) == LINES[0]
    with pytest.raises(ShardUnavailable, match="timed out"):
        await anext(lines)


async def test_pool_status_counts_a_stream_held_open(
    httpserver: HTTPServer, streams: aiohttp.ClientSession
) -> None:
    httpserver.expect_request("/query").respond_with_response(pausing(0.5, []))
    async with httpx.AsyncClient() as http:
        lines = client(httpserver.url_for(""), streams).query_lines(series_query())
        await anext(lines)
        held = pool_status(http, streams)
        await lines.aclose()
        after = pool_status(http, streams)
    assert (held.in_use, after.in_use, after.waiting) == (1, 0, 0)


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
async def test_shard_http_takes_no_proxy_from_the_environment(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv(variable, "http://127.0.0.1:9")  # nothing listens there
    httpserver.expect_request("/ping").respond_with_data("", status=204)
    async with http_for_shards() as http:
        assert (await http.get(httpserver.url_for("/ping"))).status_code == 204
