from __future__ import annotations

import orjson
import pytest

from federation.core.types import Series
from federation.router.rows import Row, encode_points, ordered, rows_from_series, to_points


def answer(
    *rows: tuple[int, float, str], columns: tuple[str, ...] = ("time", "price", "exchange")
) -> list[Series]:
    index = [("time", "price", "exchange").index(c) for c in columns]
    values = [[r[i] for i in index] for r in rows]
    return [{"name": "price", "columns": list(columns), "values": values}]


def test_rows_are_ordered_by_time_then_exchange() -> None:
    rows = rows_from_series(answer((2000, 2.0, "a"), (1000, 1.0, "b"), (1000, 1.5, "a")))
    assert [(t, e) for t, _, e in rows] == [(1000, "a"), (1000, "b"), (2000, "a")]


def test_rows_follow_columns_in_any_order() -> None:
    rows = rows_from_series(answer((1000, 1.5, "a"), columns=("exchange", "time", "price")))
    assert rows == [[1000, 1.5, "a"]]


def test_points_have_the_original_shape() -> None:
    assert to_points([[1665451202951, 19062.76, "binance-us"]]) == [
        {"price": 19062.76, "time": "2022-10-11T01:20:02.951Z", "exchange": "binance-us"}
    ]


def test_encoded_points_splice_into_an_array() -> None:
    rows = [[0, 1.5, "a"], [1000, 1e-05, 'we"ird']]
    assert orjson.loads(b"[" + encode_points(rows) + b"]") == [
        {"price": 1.5, "time": "1970-01-01T00:00:00.000Z", "exchange": "a"},
        {"price": 1e-05, "time": "1970-01-01T00:00:01.000Z", "exchange": 'we"ird'},
    ]


@pytest.mark.parametrize(
    "rows",
    [
        [[1, 1.0, "a"], [1, 1.0, "b"], [2, 1.0, "a"]],
        [[1, 1.0, "b"], [1, 1.0, "a"]],
        [[1, 1.0, "a"], [1, 2.0, "a"]],
        [[2, 1.0, "a"], [1, 1.0, "b"]],
        [],
    ],
    ids=["ordered", "exchanges-reversed", "duplicate", "time-reversed", "empty"],
)
def test_ordered_is_strictly_increasing_time_and_exchange(rows: list[Row]) -> None:
    keys = [(t, e) for t, _, e in rows]
    assert ordered(rows) == (keys == sorted(set(keys)))


@pytest.mark.parametrize(
    "price",
    [62052.70425322867, 62052.0, 1e16, 1e-05, -0.0, 5e-324, 0.1],
    ids=["typical", "integral", "1e16", "1e-05", "negative-zero", "subnormal", "0.1"],
)
def test_encoded_points_are_orjsons_bytes_of_the_points(price: float) -> None:
    rows = [[1665451202951, price, "a"], [1665451202951, 2.5, 'we"ird'], [0, price, "a"]]
    expected = [
        {"price": price, "time": "2022-10-11T01:20:02.951Z", "exchange": "a"},
        {"price": 2.5, "time": "2022-10-11T01:20:02.951Z", "exchange": 'we"ird'},
        {"price": price, "time": "1970-01-01T00:00:00.000Z", "exchange": "a"},
    ]
    assert encode_points(rows) == orjson.dumps(expected)[1:-1]
