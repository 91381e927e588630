from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from federation.core.moments import COLUMNS, combine, from_points, from_series, stddev
from federation.core.types import Series


def partial(values: np.ndarray, exchange: str = "x", pair: str = "p") -> pd.DataFrame:
    n = len(values)
    m2 = float(((values - values.mean()) ** 2).sum()) if n else 0.0
    return pd.DataFrame(
        {"exchange": [exchange], "pair": [pair], "n": [n], "mean": [values.mean()], "m2": [m2]}
    )


@pytest.mark.parametrize("cuts", [[1], [10, 11, 500], [3, 700, 998]], ids=["one", "three", "edges"])
def test_combined_partials_equal_numpy_stddev(cuts: list[int]) -> None:
    values = 60_000 + np.random.default_rng(1).normal(0, 0.05, 1000).cumsum()
    parts = [partial(chunk) for chunk in np.split(values, cuts)]
    assert stddev(combine(parts))["stddev"][0] == pytest.approx(values.std(ddof=1), rel=1e-9)


def test_stddev_below_two_points_is_nan() -> None:
    assert np.isnan(stddev(combine([partial(np.array([5.0]))]))["stddev"][0])


def test_combine_keeps_series_apart() -> None:
    a, b = partial(np.array([1.0, 3.0]), pair="a"), partial(np.array([2.0, 2.0]), pair="b")
    out = combine([a, b])
    assert dict(zip(out["pair"], out["n"], strict=True)) == {"a": 2, "b": 2}
    assert sorted(stddev(out)["stddev"].round(6)) == [0.0, 1.414214]


def test_from_series_counts_replicas_once() -> None:
    series: list[Series] = [
        {
            "name": "price",
            "tags": {"exchange": "x", "pair": "p"},
            "columns": ["time", "count", "mean", "stddev"],
            "values": [[0, 2, 2.0, 1.4142135623730951]],
        }
    ]
    frame = from_series([series, series])
    assert len(frame) == 1
    assert frame["m2"][0] == pytest.approx(2.0)


def test_from_points_moments_per_right_closed_minute_equal_numpy() -> None:
    rng = np.random.default_rng(2)
    times = np.arange(1, 181) * 1_000  # (0, 180 s]: three minutes, one point a second
    prices = 60_000 + rng.normal(0, 0.05, times.size).cumsum()
    points = pd.DataFrame({"time": times, "exchange": "x", "pair": "p", "price": prices})
    frame = from_points(points, 60_000)
    by_minute = prices.reshape(3, 60)  # (0, 60 s], (60 s, 120 s], (120 s, 180 s]
    assert frame["bucket"].tolist() == [0, 60_000, 120_000]
    assert frame["n"].tolist() == [60, 60, 60]
    assert stddev(frame)["stddev"].tolist() == pytest.approx(by_minute.std(axis=1, ddof=1))


def test_from_points_of_nothing_is_empty_with_the_columns() -> None:
    assert from_points(pd.DataFrame(), 60_000).columns.tolist() == COLUMNS
