from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs

import httpx2 as httpx
import orjson
import pytest

from federation.core.errors import QueryError, ShardError, ShardRejected, ShardUnavailable
from federation.core.influx import InfluxClient, parse_series_key
from federation.core.influxql import create_database, pair_bounds_query, series_query
from federation.core.shardmap import Shard

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler) -> InfluxClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return InfluxClient(Shard("shard-a", "http://shard-a:8086"), http, "crypto", headers={})


def raise_(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("handler", "error", "text"),
    [
        (raise_(httpx.ConnectError("refused")), ShardUnavailable, "refused"),
        (raise_(httpx.ReadTimeout("slow")), ShardUnavailable, "timed out"),
        (lambda r: httpx.Response(500, text="panic"), ShardUnavailable, "500: panic"),
        (lambda r: httpx.Response(503, text="overloaded"), ShardUnavailable, "503: overloaded"),
        (
            lambda r: httpx.Response(404, json={"error": 'database not found: "crypto"'}),
            ShardRejected,
            "database not found",
        ),
        (
            lambda r: httpx.Response(400, json={"error": "partial write: dropped=1"}),
            ShardRejected,
            "partial write",
        ),
        (
            lambda r: httpx.Response(422, json={"code": "invalid", "message": "bad line"}),
            ShardRejected,
            "bad line",
        ),
    ],
    ids=["connect", "timeout", "500", "503", "missing-db", "bad-line", "v2-error-shape"],
)
async def test_write_failure_maps_to_shard_error(
    handler: Handler, error: type[ShardError], text: str
) -> None:
    with pytest.raises(error, match=text) as info:
        await client_for(handler).write(b"price,exchange=a,pair=b price=1 1\n")
    assert info.value.shard == "shard-a"


async def test_query_error_inside_200_is_raised() -> None:
    body = {"results": [{"statement_id": 0, "error": "database not found: crypto"}]}
    with pytest.raises(QueryError, match="database not found"):
        await client_for(lambda r: httpx.Response(200, json=body)).query(series_query())


async def test_query_non_json_answer_is_unavailable() -> None:
    with pytest.raises(ShardUnavailable, match="not JSON"):
        await client_for(lambda r: httpx.Response(200, text="<html>")).query(series_query())


async def test_query_returns_series_per_statement() -> None:
    body = {
        "results": [
            {"statement_id": 0, "series": [{"columns": ["a"], "values": [[1]]}]},
            {"statement_id": 1},
        ]
    }
    answer = await client_for(lambda r: httpx.Response(200, json=body)).query(
        pair_bounds_query("btcusd")
    )
    assert answer == [[{"columns": ["a"], "values": [[1]]}], []]


async def test_write_sends_database_and_precision() -> None:
    seen: list[httpx.Request] = []
    await client_for(lambda r: seen.append(r) or httpx.Response(204)).write(b"x\n")
    assert seen[0].url.params["db"] == "crypto"
    assert seen[0].url.params["precision"] == "ms"


async def test_query_sends_the_statement_text() -> None:
    seen: list[httpx.Request] = []
    body = {"results": [{"statement_id": 0}]}
    await client_for(lambda r: seen.append(r) or httpx.Response(200, json=body)).query(
        series_query()
    )
    assert seen[0].url.params["q"] == series_query().text


async def test_execute_posts_the_statement_text() -> None:
    seen: list[httpx.Request] = []
    body = {"results": [{"statement_id": 0}]}
    await client_for(lambda r: seen.append(r) or httpx.Response(200, json=body)).execute(
        create_database("crypto")
    )
    form = parse_qs(seen[0].content.decode())
    assert (seen[0].method, form["q"]) == ("POST", [create_database("crypto").text])


@pytest.mark.parametrize(
    ("key", "tags"),
    [
        ("price,exchange=kraken,pair=btcusd", {"exchange": "kraken", "pair": "btcusd"}),
        ("price,exchange=a\\,b,pair=c\\ d", {"exchange": "a,b", "pair": "c d"}),
        ("price,exchange=k\\=v,pair=x", {"exchange": "k=v", "pair": "x"}),
    ],
    ids=["plain", "comma-space", "equals"],
)
def test_parse_series_key_unescapes(key: str, tags: dict[str, str]) -> None:
    assert parse_series_key(key) == tags


@pytest.mark.parametrize(
    ("url", "compress", "expected"),
    [
        ("http://127.0.0.1:8086", None, "identity"),
        ("http://shard-a:8086", None, "gzip"),
        ("http://127.0.0.1:8086", True, "gzip"),
    ],
    ids=["loopback", "remote", "loopback-compress"],
)
async def test_query_asks_for_gzip_as_the_shard_says(
    url: str, compress: bool | None, expected: str
) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Accept-Encoding"])
        return httpx.Response(200, json={"results": [{"statement_id": 0}]})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    await InfluxClient(Shard("shard-a", url, compress=compress), http, "crypto").query(
        series_query()
    )
    assert expected in seen[0].split(", ")


def chunk(values: list[list[object]]) -> bytes:
    series = {"name": "price", "columns": ["time", "price", "exchange"], "values": values}
    return orjson.dumps({"results": [{"statement_id": 0, "series": [series]}]})


@pytest.mark.parametrize("piece", [1, 7, 64, 10_000], ids=["bytes", "7", "64", "whole"])
async def test_query_chunks_reads_lines_cut_anywhere(piece: int) -> None:
    lines = [chunk([[1, 1.5, "a"], [2, 2.5, "b"]]), chunk([[3, 3.5, "a"]])]
    body = b"\n".join(lines) + b"\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        pieces = [body[i : i + piece] for i in range(0, len(body), piece)]
        return httpx.Response(200, stream=Pieces(pieces))

    client = client_for(handler)
    got = [s async for s in client.query_chunks(series_query())]
    assert [s[0]["values"] for s in got] == [[[1, 1.5, "a"], [2, 2.5, "b"]], [[3, 3.5, "a"]]]


class Pieces(httpx.AsyncByteStream):
    """A body that arrives in the given pieces, as a network delivers it."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece
