"""The ccxt source against a local HTTP server that answers Kraken's and Bitstamp's real
paths with payloads in their recorded formats (ccxt's own request and parsing code runs)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from federation.core.clock import now_ms
from federation.core.errors import ConfigError
from ingest.errors import SourceError
from ingest.live import CcxtSource, exchange_id, pair_id, rebase_urls
from ingest.source import validate

KRAKEN_ASSETS = {
    "error": [],
    "result": {
        code: {
            "aclass": "currency",
            "altname": alt,
            "decimals": 10,
            "display_decimals": 5,
            "collateral_value": 1.0,
            "status": "enabled",
        }
        for code, alt in (("XXBT", "XBT"), ("XETH", "ETH"), ("ZUSD", "USD"), ("ZEUR", "EUR"))
    },
}


def kraken_pair(alt: str, ws: str, base: str, quote: str) -> dict[str, Any]:
    return {
        "altname": alt,
        "wsname": ws,
        "aclass_base": "currency",
        "base": base,
        "aclass_quote": "currency",
        "quote": quote,
        "lot": "unit",
        "cost_decimals": 5,
        "pair_decimals": 1,
        "lot_decimals": 8,
        "lot_multiplier": 1,
        "leverage_buy": [2, 3, 4, 5],
        "leverage_sell": [2, 3, 4, 5],
        "fees": [[0, 0.4], [10000, 0.35]],
        "fees_maker": [[0, 0.25], [10000, 0.2]],
        "fee_volume_currency": "ZUSD",
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": "0.0001",
        "costmin": "0.5",
        "tick_size": "0.1",
        "status": "online",
    }


KRAKEN_PAIRS = {
    "error": [],
    "result": {
        "XXBTZUSD": kraken_pair("XBTUSD", "XBT/USD", "XXBT", "ZUSD"),
        "XETHZEUR": kraken_pair("ETHEUR", "ETH/EUR", "XETH", "ZEUR"),
    },
}


def kraken_ticker(last: str, volume: str) -> dict[str, Any]:
    return {
        "a": ["30300.10000", "1", "1.000"],
        "b": ["30300.00000", "1", "1.000"],
        "c": [last, "0.00067643"],
        "v": ["4083.67001100", volume],
        "p": ["30706.77771", "30689.13205"],
        "t": [34619, 38907],
        "l": ["29868.30000", "29868.30000"],
        "h": ["31631.00000", "31631.00000"],
        "o": "30502.80000",
    }


KRAKEN_TICKERS = {
    "error": [],
    "result": {
        "XXBTZUSD": kraken_ticker("30303.20000", "4412.73601799"),
        "XETHZEUR": kraken_ticker("1712.45000", "9120.5"),
    },
}


def bitstamp_market(name: str, kind: str = "SPOT") -> dict[str, Any]:
    base, quote = name.split("/")
    return {
        "name": name,
        "market_symbol": name.replace("/", "").replace("-PERP", "-perp").lower(),
        "base_currency": base,
        "base_decimals": 8,
        "counter_currency": quote.split("-")[0],
        "counter_decimals": 0,
        "minimum_order_value": "10",
        "trading": "Enabled",
        "instant_order_counter_decimals": 2,
        "instant_and_market_orders": "Enabled",
        "description": f"{base} / {quote}",
        "market_type": kind,
    }


BITSTAMP_MARKETS = [
    bitstamp_market("BTC/USD"),
    bitstamp_market("ETH/USD"),
    {**bitstamp_market("BTC/USD-PERP", "PERPETUAL"), "payoff_type": "Linear"},
]


def bitstamp_ticker(pair: str, last: str, stamp: str) -> dict[str, Any]:
    return {
        "timestamp": stamp,
        "open": "25730",
        "high": "26252",
        "low": "25350",
        "last": last,
        "volume": "3563.13819902",
        "vwap": "25681",
        "bid": "26208",
        "ask": "26211",
        "side": "0",
        "open_24": "25895",
        "percent_change_24": "1.24",
        "pair": pair,
    }


BITSTAMP_TICKERS = [
    bitstamp_ticker("BTC/USD", "26216", "1686068944"),
    bitstamp_ticker("ETH/USD", "1841.3", "1686068945"),
    bitstamp_ticker("BTC/USD-PERP", "26220", "1686068944"),
]


def serve_kraken(server: HTTPServer, tickers: Any = KRAKEN_TICKERS, status: int = 200) -> None:
    server.expect_request("/0/public/Assets").respond_with_json(KRAKEN_ASSETS)
    server.expect_request("/0/public/AssetPairs").respond_with_json(KRAKEN_PAIRS)
    server.expect_request("/0/public/Ticker").respond_with_json(tickers, status=status)


def serve_bitstamp(server: HTTPServer, tickers: Any = BITSTAMP_TICKERS, status: int = 200) -> None:
    server.expect_request("/api/v2/markets/").respond_with_json(BITSTAMP_MARKETS)
    server.expect_request("/api/v2/ticker/").respond_with_json(tickers, status=status)


@pytest.fixture
async def source(httpserver: HTTPServer) -> AsyncIterator[CcxtSource]:
    url = httpserver.url_for("/").rstrip("/")
    live = CcxtSource(
        ["kraken", "bitstamp"],
        api_urls={"kraken": url, "bitstamp": url},
        timeout_s=2.0,
        options={"kraken": {"rateLimit": 10}},  # Kraken's 1 request/s, shortened for the test
    )
    yield live
    await live.aclose()


async def rows_of(source: CcxtSource) -> tuple[pd.DataFrame, Counter[str]]:
    snapshot = await source.snapshot(1)
    problems = snapshot.problems.copy()
    return validate(snapshot.rows, 1, problems), problems


async def test_snapshot_normalises_both_exchanges(
    httpserver: HTTPServer, source: CcxtSource
) -> None:
    serve_kraken(httpserver)
    serve_bitstamp(httpserver)
    rows, problems = await rows_of(source)
    got = {(r.exchange, r.pair): (r.price, r.volume) for r in rows.itertuples()}
    assert got == {
        ("kraken", "btcusd"): (30303.2, 4412.73601799),
        ("kraken", "etheur"): (1712.45, 9120.5),
        ("bitstamp", "btcusd"): (26216.0, 3563.13819902),
        ("bitstamp", "ethusd"): (1841.3, 3563.13819902),
    }
    assert problems == Counter({"unknown_market": 1})  # the perpetual's ticker: no spot market


async def test_snapshot_time_is_exchange_time_or_fetch_time(
    httpserver: HTTPServer, source: CcxtSource
) -> None:
    serve_kraken(httpserver)
    serve_bitstamp(httpserver)
    before = now_ms()
    rows, _ = await rows_of(source)
    times = rows.set_index(["exchange", "pair"])["time"]
    assert times["bitstamp", "ethusd"] == 1_686_068_945_000
    assert before <= times["kraken", "btcusd"] <= now_ms()  # Kraken gives no timestamp


async def test_snapshot_markets_loaded_once(httpserver: HTTPServer, source: CcxtSource) -> None:
    serve_kraken(httpserver)
    serve_bitstamp(httpserver)
    await source.snapshot(1)
    await source.snapshot(2)
    paths = Counter(request.path for request, _ in httpserver.log)
    assert paths["/0/public/AssetPairs"] == 1
    assert paths["/0/public/Ticker"] == 2


@pytest.mark.parametrize(
    ("status", "tickers", "reason"),
    [
        (500, {"unexpected": "shape"}, "exchange_unreachable"),
        (429, {"unexpected": "shape"}, "exchange_rate_limited"),
        (200, [], "exchange_no_tickers"),
        (200, {"unexpected": "shape"}, "unknown_market"),
        (200, "a string", "exchange_bad_payload"),
    ],
    ids=["500", "429", "empty", "unknown-shape", "garbage"],
)
async def test_snapshot_one_exchange_failing_keeps_the_other(
    httpserver: HTTPServer, source: CcxtSource, status: int, tickers: Any, reason: str
) -> None:
    serve_kraken(httpserver)
    serve_bitstamp(httpserver, tickers=tickers, status=status)
    rows, problems = await rows_of(source)
    assert set(rows["exchange"]) == {"kraken"}
    assert problems[reason] == 1


async def test_snapshot_kraken_error_body_counted(
    httpserver: HTTPServer, source: CcxtSource
) -> None:
    serve_kraken(httpserver, tickers={"error": ["EService:Unavailable"], "result": {}})
    serve_bitstamp(httpserver)
    rows, problems = await rows_of(source)
    assert set(rows["exchange"]) == {"bitstamp"}
    assert problems["exchange_unreachable"] + problems["exchange_exchange_error"] == 1


async def test_snapshot_every_exchange_failing_raises(
    httpserver: HTTPServer, source: CcxtSource
) -> None:
    serve_kraken(httpserver, status=502)
    serve_bitstamp(httpserver, status=502)
    with pytest.raises(SourceError, match="kraken") as caught:
        await source.snapshot(1)
    assert caught.value.reason == "all_exchanges_failed"


async def test_snapshot_ticker_without_last_price_counted(
    httpserver: HTTPServer, source: CcxtSource
) -> None:
    tickers = {"error": [], "result": {"XXBTZUSD": {**kraken_ticker("1", "2"), "c": []}}}
    serve_kraken(httpserver, tickers=tickers)
    serve_bitstamp(httpserver)
    rows, problems = await rows_of(source)
    assert set(rows["exchange"]) == {"bitstamp"}
    assert problems["price_not_number"] == 1


async def test_snapshot_unparsable_price_costs_only_that_exchange(
    httpserver: HTTPServer, source: CcxtSource
) -> None:
    serve_kraken(httpserver)
    serve_bitstamp(httpserver, tickers=[bitstamp_ticker("BTC/USD", "n/a", "1686068944")])
    rows, problems = await rows_of(source)
    assert set(rows["exchange"]) == {"kraken"}
    assert problems["exchange_bad_payload"] == 1


async def test_snapshot_symbols_limit_the_rows(httpserver: HTTPServer) -> None:
    serve_bitstamp(httpserver)
    url = httpserver.url_for("/").rstrip("/")
    live = CcxtSource(["bitstamp"], symbols=["ETH/USD"], api_urls={"bitstamp": url})
    try:
        rows, _ = await rows_of(live)
    finally:
        await live.aclose()
    assert rows["pair"].tolist() == ["ethusd"]


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("BTC/USD", "btcusd"),
        ("1000SHIB/USDT", "1000shibusdt"),
        ("BTC/USDT:USDT", None),
        ("BTC-PERP", None),
        ("USD.E/USD", "usdeusd"),
    ],
    ids=["spot", "digits", "swap", "no-slash", "dot"],
)
def test_pair_id_normalises_symbol(symbol: str, expected: str | None) -> None:
    assert pair_id(symbol) == expected


@pytest.mark.parametrize(
    ("ccxt_id", "expected"),
    [("binanceus", "binance-us"), ("coinbaseexchange", "coinbase-pro"), ("kraken", "kraken")],
)
def test_exchange_id_uses_original_names(ccxt_id: str, expected: str) -> None:
    assert exchange_id(ccxt_id) == expected


def test_rebase_urls_keeps_paths_and_shape() -> None:
    urls = {"public": "https://www.bitstamp.net/api", "nested": {"v1": "https://x.com/v1"}}
    assert rebase_urls(urls, "http://127.0.0.1:9000") == {
        "public": "http://127.0.0.1:9000/api",
        "nested": {"v1": "http://127.0.0.1:9000/v1"},
    }


@pytest.mark.parametrize(
    ("exchanges", "urls", "match"),
    [
        (["nosuchexchange"], {}, "not known to ccxt"),
        ([], {}, "no exchange given"),
        (["kraken"], {"bitstamp": "http://x"}, "not in --exchanges"),
    ],
    ids=["unknown", "empty", "stray-url"],
)
def test_bad_configuration_names_the_option(
    exchanges: list[str], urls: dict[str, str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        CcxtSource(exchanges, api_urls=urls)
