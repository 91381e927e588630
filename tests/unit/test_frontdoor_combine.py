"""Partials combined (the front door's aggregates), fill, functions from raw points and
what a WHERE clause says, against independent oracles (numpy, pandas, statistics)."""

from __future__ import annotations

import statistics

import numpy as np
import pandas as pd
import pytest

from federation.core import influxql_ast as tree
from federation.router.frontdoor.combine import Accumulator, filled
from federation.router.frontdoor.conditions import TimeRange, fix_times, pinned, time_range
from federation.router.frontdoor.rawcalc import compute


def _parts(values: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    return np.split(values, cuts)


@pytest.mark.parametrize("cuts", [[], [1], [3, 4], [2, 9, 15]], ids=["one", "two", "three", "four"])
def test_stddev_of_partials_equals_numpy_on_all_points(cuts: list[int]) -> None:
    values = np.random.default_rng(1).normal(60_000, 0.05, 20)
    accumulator = Accumulator("stddev")
    for part in _parts(values, cuts):
        sd = float(np.std(part, ddof=1)) if len(part) > 1 else None
        accumulator.add_moments(len(part), float(part.sum()), float(part.mean()), sd)
    assert accumulator.result() == pytest.approx(np.std(values, ddof=1), rel=1e-9)


def test_stddev_below_two_points_is_null() -> None:
    accumulator = Accumulator("stddev")
    accumulator.add_moments(1, 5.0, 5.0, None)
    assert accumulator.result() is None


@pytest.mark.parametrize(
    ("func", "expected"),
    [("min", (1.0, 20)), ("max", (9.0, 10)), ("first", (9.0, 10)), ("last", (9.0, 40))],
    ids=["min-earliest", "max-earliest", "first-larger", "last-latest"],
)
def test_selectors_break_ties_as_influxdbs_reducers(func: str, expected: tuple[float, int]) -> None:
    accumulator = Accumulator(func)
    for value, time in [(9.0, 40), (9.0, 10), (3.0, 10), (1.0, 30), (1.0, 20)]:
        accumulator.add_selector(func, value, time)
    assert (accumulator.value, accumulator.time) == expected


def test_fill_linear_equals_pandas_interpolation() -> None:
    rows = [(0, [1.0]), (30, [4.0]), (50, [0.0])]
    got = filled(rows, range(0, 60, 10), "linear", None, ["mean"])
    frame = pd.Series([1.0, None, None, 4.0, None, 0.0], index=range(0, 60, 10))
    assert [v[0] for _, v in got] == frame.interpolate(method="index").tolist()


def test_fill_previous_equals_pandas_ffill() -> None:
    rows = [(10, [2.0]), (40, [5.0])]
    got = filled(rows, range(0, 60, 10), "previous", None, ["max"])
    frame = pd.Series([None, 2.0, None, None, 5.0, None], dtype="float64").ffill()
    assert [v[0] for _, v in got] == [None if np.isnan(x) else x for x in frame]


def test_fill_none_keeps_only_windows_with_points() -> None:
    rows = [(10, [2.0])]
    assert filled(rows, range(0, 40, 10), "none", None, ["sum"]) == rows


@pytest.mark.parametrize("count", [1, 2, 7, 10], ids=["1", "2", "7", "10"])
def test_median_and_mode_equal_statistics(count: int) -> None:
    values = [float(v) for v in np.random.default_rng(count).integers(0, 4, count)]
    points = list(enumerate(values))
    assert compute("median", points) == [(None, statistics.median(values))]
    assert compute("mode", points) == [(None, min(statistics.multimode(values)))]


def test_percentile_picks_the_nearest_rank_with_its_time() -> None:
    points = [(t, float(v)) for t, v in enumerate([50, 10, 40, 20, 30])]
    # sorted 10, 20, 30, 40, 50: index floor(5 * 0.5 + 0.5) - 1 = 2, the 30 at time 4
    assert compute("percentile", points, 50) == [(4, 30.0)]
    assert compute("percentile", points, 100) == [(0, 50.0)]


def test_distinct_keeps_first_seen_order() -> None:
    points = [(1, 3.0), (2, 1.0), (3, 3.0), (4, 2.0)]
    assert [v for _, v in compute("distinct", points)] == [3.0, 1.0, 2.0]


NOW = 1_700_000_000_000_000_000


def _where(text: str) -> tree.Expr | None:
    from federation.core.influxql_parser import parse_query

    statement = parse_query(f"SELECT v FROM m WHERE {text}").statements[0]
    assert isinstance(statement, tree.Select)
    return fix_times(statement.condition, NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("time > now() - 1h", TimeRange(NOW - 3_600 * 10**9 + 1, None)),
        ("time >= 1700000000000ms AND time <= 1700000001s", TimeRange(NOW, NOW + 10**9)),
        ("time < '2023-11-14T22:13:20.5Z'", TimeRange(None, NOW + 5 * 10**8 - 1)),
        ("pair = 'x'", TimeRange()),
    ],
    ids=["now", "epoch-units", "rfc3339", "none"],
)
def test_time_range_of_a_where_clause(text: str, expected: TimeRange) -> None:
    assert time_range(_where(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pair = 'a'", {"a"}),
        ("(pair = 'a' OR pair = 'b') AND exchange = 'k'", {"a", "b"}),
        ("pair = 'a' OR exchange = 'k'", None),
        ("pair != 'a'", None),
        ("pair =~ /a/", None),
    ],
    ids=["equal", "or-and", "or-other", "not-equal", "regex"],
)
def test_pinned_pairs_of_a_where_clause(text: str, expected: set[str] | None) -> None:
    assert pinned(_where(text), "pair") == (None if expected is None else frozenset(expected))
