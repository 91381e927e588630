"""The Cryptowatch-format source keeps what arrived: slow volumes, a page that fails,
cursors that lie, keys that are not markets, ids in another case or with a dot."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from federation.core.clock import now_ms
from federation.core.shardmap import Shard, ShardMap
from federation.tools.ingester import make_source, parse_settings
from ingest.cryptowatch import CryptowatchSource
from ingest.errors import SourceError
from ingest.loop import Ingester
from ingest.writer import ShardWriter
from tests.fakeshard import FakeShard
from tests.unit.test_cryptowatch import PRICES, SUMMARIES, serve, summary

SHARD_MAP = ShardMap((Shard("shard-a", "http://a.test"),))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def threaded() -> Iterator[HTTPServer]:
    """A server that answers the two endpoints at once (one may be slow)."""
    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def source(httpserver: HTTPServer, http: httpx.AsyncClient) -> CryptowatchSource:
    return CryptowatchSource(httpserver.url_for("/"), http, timeout_s=2.0)


def ingester_of(source: CryptowatchSource, interval_s: float = 60.0) -> tuple[Ingester, FakeShard]:
    fake = FakeShard(SHARD_MAP.shards[0])
    return Ingester(source, ShardWriter(SHARD_MAP, {"shard-a": fake}), interval_s=interval_s), fake


def page(result: dict[str, Any], last: str, more: Any) -> dict[str, Any]:
    return {"result": result, "cursor": {"last": last, "hasMore": more}}


async def test_late_summaries_never_hold_prices_back(
    threaded: HTTPServer, http: httpx.AsyncClient
) -> None:
    def late(request: Request) -> Response:
        time.sleep(3.0)
        return Response("{}", content_type="application/json")

    serve(threaded, "/markets/prices", PRICES)
    threaded.expect_request("/markets/summaries").respond_with_handler(late)
    url = threaded.url_for("/")
    settings = parse_settings(["--source", "cryptowatch", "--url", url, "--interval", "2"], {})
    source = make_source(settings.ingest, http)
    assert isinstance(source, CryptowatchSource)
    ingester, fake = ingester_of(source, interval_s=2.0)
    ticks = [now_ms() // 2000 * 2000, now_ms() // 2000 * 2000 + 2000]
    for tick in ticks:
        await ingester.tick(tick)
    assert sorted(fake.points["time"].tolist()) == sorted(ticks * len(PRICES))
    assert ingester.problems["summaries_late"] == 2


async def test_page_two_refused_keeps_page_one(
    httpserver: HTTPServer, source: CryptowatchSource
) -> None:
    httpserver.expect_request("/markets/prices", query_string="cursor=p2").respond_with_json(
        {"error": "Out of allowance"}, status=429
    )
    httpserver.expect_request("/markets/prices", query_string="").respond_with_json(
        page({"market:kraken:btcusd": 1.0, "market:kraken:ethusd": 2.0}, "p2", True)
    )
    serve(httpserver, "/markets/summaries", {})
    ingester, fake = ingester_of(source)
    await ingester.tick(now_ms() // 60_000 * 60_000)
    assert sorted(fake.points["pair"]) == ["btcusd", "ethusd"]
    assert ingester.problems["prices_incomplete_rate_limited"] == 1


@pytest.mark.parametrize(
    ("more", "reason"),
    [("false", "prices_bad_cursor"), ("true", "prices_bad_cursor"), (1, "prices_bad_cursor")],
    ids=["string-false", "string-true", "number"],
)
async def test_cursor_flag_not_a_bool_stops_paging(
    httpserver: HTTPServer, source: CryptowatchSource, more: Any, reason: str
) -> None:
    serve(httpserver, "/markets/summaries", {})
    httpserver.expect_request("/markets/prices").respond_with_json(
        page({"market:kraken:btcusd": 1.0}, "p2", more)
    )
    snapshot = await source.snapshot(1)
    assert (len(snapshot.rows), snapshot.problems[reason]) == (1, 1)
    assert len([r for r, _ in httpserver.log if r.path == "/markets/prices"]) == 1


async def test_repeating_cursor_stops_with_one_warning(
    httpserver: HTTPServer, source: CryptowatchSource, caplog: pytest.LogCaptureFixture
) -> None:
    serve(httpserver, "/markets/summaries", {})
    httpserver.expect_request("/markets/prices").respond_with_json(
        page({"market:kraken:btcusd": 1.0}, "same", True)
    )
    first = await source.snapshot(1)
    await source.snapshot(2)
    asked = [r for r, _ in httpserver.log if r.path == "/markets/prices"]
    assert (len(asked), first.problems["prices_cursor_repeated"]) == (4, 1)
    assert caplog.text.count("twice") == 1


async def test_ids_lowercased_before_volumes_join(
    httpserver: HTTPServer, source: CryptowatchSource
) -> None:
    serve(httpserver, "/markets/prices", {"market:Kraken:BTCUSD": 19062.76})
    serve(httpserver, "/markets/summaries", {"kraken:btcusd": summary(19062.76, 5123.4)})
    rows = (await source.snapshot(1)).rows
    assert rows[["exchange", "pair", "volume"]].values.tolist() == [["kraken", "btcusd", 5123.4]]


async def test_index_keys_counted_once_per_tick_not_warned(
    httpserver: HTTPServer, source: CryptowatchSource, caplog: pytest.LogCaptureFixture
) -> None:
    index = {"index:kraken-futures:btcusd": 19060.0, "index:kraken-futures:ethusd": 1300.0}
    serve(httpserver, "/markets/prices", {**PRICES, **index})
    serve(httpserver, "/markets/summaries", SUMMARIES)
    ingester, fake = ingester_of(source)
    with caplog.at_level(logging.WARNING):
        await ingester.tick(now_ms() // 60_000 * 60_000)
    assert (len(fake.points), ingester.ignored, ingester.problems) == (
        len(PRICES),
        {"not_market": 2},
        {},
    )
    assert caplog.text == ""


async def test_both_endpoints_failing_never_claims_prices_written(
    httpserver: HTTPServer, source: CryptowatchSource, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/markets/prices").respond_with_data("down", status=503)
    httpserver.expect_request("/markets/summaries").respond_with_data("down", status=502)
    with pytest.raises(SourceError) as caught:
        await source.snapshot(1)
    assert str(caught.value) == (
        "source cryptowatch: GET /markets/prices answered 503: down;"
        " GET /markets/summaries answered 502: down too"
    )
    assert "without volume" not in caplog.text


async def test_summaries_failure_logged_with_endpoint(
    httpserver: HTTPServer, source: CryptowatchSource, caplog: pytest.LogCaptureFixture
) -> None:
    serve(httpserver, "/markets/prices", PRICES)
    httpserver.expect_request("/markets/summaries").respond_with_data("down", status=503)
    await source.snapshot(1)
    assert "GET /markets/summaries answered 503" in caplog.text


async def test_dotted_market_id_kept(httpserver: HTTPServer, source: CryptowatchSource) -> None:
    serve(httpserver, "/markets/prices", {"market:uniswap-v3:IMX.2WETH": 0.00051})
    serve(httpserver, "/markets/summaries", {"uniswap-v3:imx.2weth": summary(0.00051, 1e6)})
    ingester, fake = ingester_of(source)
    await ingester.tick(now_ms() // 60_000 * 60_000)
    assert fake.points[["exchange", "pair", "volume"]].values.tolist() == [
        ["uniswap-v3", "imx.2weth", 1e6]
    ]
