from __future__ import annotations

import math

import pandas as pd
import pytest
from influxdb_client import Point, WritePrecision

from federation.core.lineproto import batches, escape_tag, finite_rows, pairs_of, to_lines


def frame(**overrides: list[object]) -> pd.DataFrame:
    data: dict[str, list[object]] = {
        "time": [1700000000000, 1700000060000],
        "exchange": ["binance-us", "kraken"],
        "pair": ["btcusd", "ethusd"],
        "price": [19062.76, 0.00001046],
        "volume": [12.5, float("nan")],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def oracle(row: pd.Series) -> str:
    point = Point("price").tag("exchange", row.exchange).tag("pair", row.pair)
    point = point.field("price", float(row.price))
    if not math.isnan(row.volume):
        point = point.field("volume", float(row.volume))
    return str(point.time(int(row.time), WritePrecision.MS).to_line_protocol())


@pytest.mark.parametrize(
    "exchange",
    ["binance-us", "we ird", "a,b", "k=v", "back\\slash", "imx.2weth"],
    ids=["plain", "space", "comma", "equals", "backslash", "dot"],
)
def test_lines_match_influxdb_client(exchange: str) -> None:
    data = frame(exchange=[exchange, exchange])
    assert to_lines(data) == [oracle(row) for row in data.itertuples()]  # type: ignore[arg-type]


def test_lines_leave_out_missing_volume() -> None:
    assert to_lines(frame())[1] == "price,exchange=kraken,pair=ethusd price=1.046e-05 1700000060000"


def test_escape_tag_plain_value_unchanged() -> None:
    assert escape_tag("btcusd") == "btcusd"


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), -1.0, 0.0], ids=["nan", "inf", "negative", "zero"]
)
def test_finite_rows_drop_unwritable_prices(bad: float) -> None:
    assert finite_rows(frame(price=[bad, 2.0]))["price"].tolist() == [2.0]


def test_batches_end_every_body_with_newline() -> None:
    bodies = batches(["a", "b", "c"], 2)
    assert bodies == [b"a\nb\n", b"c\n"]


@pytest.mark.parametrize(
    ("exchange", "pair"),
    [
        ("kraken", "imx.2weth"),
        ("a,pair=x", "btc usd"),
        ("k=v", "p,q=r"),
        ("back\\slash", "pair=1"),
    ],
    ids=["dot", "pair-tag-in-exchange", "escapes-in-pair", "backslash"],
)
def test_pairs_of_reads_back_every_pair(exchange: str, pair: str) -> None:
    data = frame(exchange=[exchange, "kraken"], pair=[pair, "ethusd"])
    body = b"".join(batches(to_lines(data), 10))
    assert pairs_of(body) == [pair, "ethusd"]
