"""The Cryptowatch-format source against a local HTTP server serving recorded-format payloads."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from federation.core.shardmap import Shard, ShardMap
from ingest.cryptowatch import CryptowatchSource
from ingest.errors import SourceError
from ingest.loop import Ingester
from ingest.source import validate
from ingest.writer import ShardWriter
from tests.fakeshard import FakeShard

ALLOWANCE = {"cost": 0.015, "remaining": 9.985, "upgrade": "For unlimited API access..."}
CURSOR_END = {"last": "dTTdIDK1iZ_oP3mSQLLFvShprKfSnlVQwbbmDnGH0mI", "hasMore": False}


def summary(last: float, volume: float) -> dict[str, Any]:
    return {
        "price": {
            "last": last,
            "high": last * 1.02,
            "low": last * 0.97,
            "change": {"percentage": 0.0447, "absolute": 3.1},
        },
        "volume": volume,
        "volumeQuote": volume * last,
    }


PRICES = {
    "market:binance-us:aaveusdt": 70.1,
    "market:binance-us:adabtc": 0.00001046,
    "bitfinex:btcusd": 19062.76,  # the older form, without "market:"
}
SUMMARIES = {
    "binance-us:aaveusdt": summary(72.5, 218.722),
    "binance-us:adabtc": summary(0.00001046, 90412.0),
    "bitfinex:btcusd": summary(19062.76, 5123.4),
}


def serve(server: HTTPServer, path: str, result: Any, **extra: Any) -> None:
    body = {"result": result, "cursor": CURSOR_END, "allowance": ALLOWANCE, **extra}
    server.expect_request(path).respond_with_json(body)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def source(httpserver: HTTPServer, http: httpx.AsyncClient) -> CryptowatchSource:
    return CryptowatchSource(httpserver.url_for("/"), http, timeout_s=0.5)


async def rows_of(source: CryptowatchSource) -> tuple[pd.DataFrame, Counter[str]]:
    snapshot = await source.snapshot(1_700_000_000_000)
    problems = snapshot.problems.copy()
    return validate(snapshot.rows, 1_700_000_000_000, problems), problems


async def test_snapshot_reads_prices_and_volume(
    httpserver: HTTPServer, source: CryptowatchSource
) -> None:
    serve(httpserver, "/markets/prices", PRICES)
    serve(httpserver, "/markets/summaries", SUMMARIES)
    rows, problems = await rows_of(source)
    got = {(r.exchange, r.pair): (r.price, r.volume) for r in rows.itertuples()}
    assert got == {
        ("binance-us", "aaveusdt"): (70.1, 218.722),
        ("binance-us", "adabtc"): (0.00001046, 90412.0),
        ("bitfinex", "btcusd"): (19062.76, 5123.4),
    }
    assert not problems
    assert (rows["time"] == 1_700_000_000_000).all()


async def test_snapshot_follows_cursor_pages(
    httpserver: HTTPServer, source: CryptowatchSource
) -> None:
    first = {"result": {"market:kraken:btcusd": 1.0}, "cursor": {"last": "p2", "hasMore": True}}
    httpserver.expect_request("/markets/prices", query_string="cursor=p2").respond_with_json(
        {"result": {"market:kraken:ethusd": 2.0}, "cursor": CURSOR_END}
    )
    httpserver.expect_request("/markets/prices", query_string="").respond_with_json(first)
    serve(httpserver, "/markets/summaries", {})
    rows, _ = await rows_of(source)
    assert sorted(rows["pair"]) == ["btcusd", "ethusd"]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("market:kraken", 1.0, "bad_key"),
        ("market:kraken:btc:usd", 1.0, "bad_key"),
        ("market:kraken:BTC USD", 1.0, "bad_key"),
        ("market:kraken:btcusd", "19062.76", "price_not_number"),
        ("market:kraken:btcusd", None, "price_not_number"),
        ("market:kraken:btcusd", True, "price_not_number"),
        ("market:kraken:btcusd", -5.0, "price_not_positive"),
        ("market:kraken:btcusd", 0, "price_not_positive"),
        ("market:kraken:" + "x" * 70, 1.0, "bad_id"),
    ],
    ids=[
        "no-pair",
        "extra-colon",
        "space",
        "string",
        "null",
        "bool",
        "negative",
        "zero",
        "too-long",
    ],
)
async def test_snapshot_bad_row_counted_not_written(
    httpserver: HTTPServer, source: CryptowatchSource, key: str, value: Any, reason: str
) -> None:
    serve(httpserver, "/markets/prices", {key: value, "market:kraken:ethusd": 2000.5})
    serve(httpserver, "/markets/summaries", {})
    rows, problems = await rows_of(source)
    assert rows["pair"].tolist() == ["ethusd"]
    assert problems[reason] == 1


async def test_snapshot_summary_missing_fields_keeps_price(
    httpserver: HTTPServer, source: CryptowatchSource
) -> None:
    serve(httpserver, "/markets/prices", {"market:kraken:btcusd": 19062.76})
    serve(httpserver, "/markets/summaries", {"kraken:btcusd": {"price": {"last": 19062.76}}})
    rows, problems = await rows_of(source)
    assert rows["price"].tolist() == [19062.76]
    assert rows["volume"].isna().all()
    assert problems["summary_missing_field"] == 1


@pytest.mark.parametrize(
    ("respond", "reason"),
    [
        (lambda s: s.respond_with_json({"error": "Internal Server Error"}, status=500), "http_500"),
        (lambda s: s.respond_with_data("<html>Bad Gateway</html>", status=502), "http_502"),
        (lambda s: s.respond_with_json({"error": "Route not found"}, status=404), "http_404"),
        (lambda s: s.respond_with_json({"error": "Out of allowance"}, status=429), "rate_limited"),
        (lambda s: s.respond_with_data("<html>maintenance</html>"), "bad_json"),
        (lambda s: s.respond_with_json({"error": "Unauthorized"}), "api_error"),
        (lambda s: s.respond_with_json({"result": ["not", "a", "map"]}), "bad_shape"),
        (lambda s: s.respond_with_json([1, 2]), "bad_shape"),
    ],
    ids=["500", "502-html", "404", "429", "not-json", "error-body", "result-list", "body-list"],
)
async def test_snapshot_failed_request_raises_source_error(
    httpserver: HTTPServer, source: CryptowatchSource, respond: Any, reason: str
) -> None:
    respond(httpserver.expect_request("/markets/prices"))
    respond(httpserver.expect_request("/markets/summaries"))
    with pytest.raises(SourceError) as caught:
        await source.snapshot(1)
    assert caught.value.reason == reason


async def test_snapshot_timeout_raises_source_error(
    httpserver: HTTPServer, source: CryptowatchSource
) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/markets/prices").respond_with_handler(slow)
    httpserver.expect_request("/markets/summaries").respond_with_handler(slow)
    with pytest.raises(SourceError, match="timed out") as caught:
        await source.snapshot(1)
    assert caught.value.reason == "timeout"


async def test_snapshot_unreachable_raises_source_error(http: httpx.AsyncClient) -> None:
    source = CryptowatchSource("http://127.0.0.1:9", http, timeout_s=0.5)
    with pytest.raises(SourceError) as caught:
        await source.snapshot(1)
    assert caught.value.reason == "unreachable"


async def test_snapshot_retry_after_holds_next_request(
    httpserver: HTTPServer, source: CryptowatchSource
) -> None:
    for path in ("/markets/prices", "/markets/summaries"):
        httpserver.expect_request(path).respond_with_json(
            {"error": "Out of allowance"}, status=429, headers={"Retry-After": "120"}
        )
    with pytest.raises(SourceError):
        await source.snapshot(1)
    calls = len(httpserver.log)
    with pytest.raises(SourceError, match="next request in"):
        await source.snapshot(2)
    assert len(httpserver.log) == calls


async def test_snapshot_summaries_down_gives_prices_without_volume(
    httpserver: HTTPServer, source: CryptowatchSource
) -> None:
    serve(httpserver, "/markets/prices", PRICES)
    httpserver.expect_request("/markets/summaries").respond_with_data("down", status=503)
    rows, problems = await rows_of(source)
    assert len(rows) == 3
    assert rows["volume"].isna().all()
    assert problems["summaries_http_503"] == 1


async def test_snapshot_prices_down_uses_summaries_last(
    httpserver: HTTPServer, source: CryptowatchSource
) -> None:
    httpserver.expect_request("/markets/prices").respond_with_data("down", status=503)
    serve(httpserver, "/markets/summaries", SUMMARIES)
    rows, problems = await rows_of(source)
    assert rows.set_index("pair").loc["aaveusdt", "price"] == 72.5
    assert problems["prices_http_503"] == 1


async def test_snapshot_sends_api_key_header(
    httpserver: HTTPServer, http: httpx.AsyncClient
) -> None:
    httpserver.expect_request(
        "/markets/prices", headers={"X-CW-API-Key": "k123"}
    ).respond_with_json({"result": {"market:kraken:btcusd": 1.0}})
    source = CryptowatchSource(httpserver.url_for("/"), http, api_key="k123", volume=False)
    assert len((await source.snapshot(1)).rows) == 1


async def test_tick_with_garbage_writes_only_good_rows(
    httpserver: HTTPServer, source: CryptowatchSource
) -> None:
    serve(httpserver, "/markets/prices", {**PRICES, "market:kraken:btcusd": "NaN", "junk": 1})
    serve(httpserver, "/markets/summaries", {"kraken:btcusd": "nonsense"})
    shard_map = ShardMap((Shard("shard-a", "http://a.test"),))
    fake = FakeShard(shard_map.shards[0])
    ingester = Ingester(source, ShardWriter(shard_map, {"shard-a": fake}))
    report = await ingester.tick(1_700_000_000_000)
    assert report.points == 3
    assert len(fake.lines) == 3
    assert ingester.problems == Counter(
        {"bad_key": 1, "price_not_number": 1, "summary_missing_field": 1}
    )


async def test_tick_source_error_writes_nothing(
    httpserver: HTTPServer, source: CryptowatchSource
) -> None:
    httpserver.expect_request("/markets/prices").respond_with_data("down", status=500)
    httpserver.expect_request("/markets/summaries").respond_with_data("down", status=500)
    shard_map = ShardMap((Shard("shard-a", "http://a.test"),))
    ingester = Ingester(source, ShardWriter(shard_map, {}))
    report = await ingester.tick(1_700_000_000_000)
    assert report.points == 0
    assert ingester.source_errors == Counter({"http_500": 1})
