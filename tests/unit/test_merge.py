from __future__ import annotations

from federation.merge import iso_times, merge_rows, rows_from_series, to_points
from federation.types import Series


def answer(*rows: tuple[int, float, str]) -> list[Series]:
    return [
        {
            "name": "price",
            "columns": ["time", "price", "exchange"],
            "values": [list(r) for r in rows],
        }
    ]


def test_merge_orders_by_time_then_exchange() -> None:
    a = rows_from_series(answer((2000, 2.0, "b"), (1000, 1.0, "b")))
    b = rows_from_series(answer((1000, 1.5, "a"), (3000, 3.0, "a")))
    assert [(t, e) for t, e, _ in merge_rows([a, b])] == [
        (1000, "a"),
        (1000, "b"),
        (2000, "b"),
        (3000, "a"),
    ]


def test_merge_drops_replica_duplicates() -> None:
    rows = rows_from_series(answer((1000, 1.0, "a"), (2000, 2.0, "a")))
    assert list(merge_rows([rows, rows, rows])) == rows


def test_rows_skip_null_prices() -> None:
    assert rows_from_series(answer((1000, None, "a"), (2000, 2.0, "a"))) == [(2000, "a", 2.0)]  # type: ignore[arg-type]


def test_iso_times_have_milliseconds_and_z() -> None:
    assert iso_times([1665451202951, 0]) == ["2022-10-11T01:20:02.951Z", "1970-01-01T00:00:00.000Z"]


def test_points_have_the_original_shape() -> None:
    assert to_points([(1665451202951, "binance-us", 19062.76)]) == [
        {"price": 19062.76, "time": "2022-10-11T01:20:02.951Z", "exchange": "binance-us"}
    ]
