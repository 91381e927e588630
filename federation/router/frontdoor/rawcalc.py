"""Functions computed from raw points, for those no partial can combine (MEDIAN,
PERCENTILE, MODE, DISTINCT) and for every call of a statement that has one of them.

Each takes one group's (time, value) points in time order and gives its rows as
InfluxDB's reducers do: MEDIAN the mean of the two middle values of an even count;
PERCENTILE the value at ``floor(n * p / 100 + 0.5) - 1`` of the sorted values, with its
time; MODE the most frequent value, the smallest of a tie; DISTINCT each value once, in
the order first seen; the combinable ones as :mod:`.combine` defines them.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

RAW_ONLY = frozenset({"median", "percentile", "mode", "distinct"})
# Functions whose row carries the time of the point they pick (without GROUP BY time,
# alone in their statement).
POINT_SELECTORS = frozenset({"min", "max", "first", "last", "percentile"})

Point = tuple[int | None, Any]


def _pick(points: Sequence[Point], better: Any) -> Point:
    best = points[0]
    for point in points[1:]:
        if better(point, best):
            best = point
    return best


def compute(func: str, points: Sequence[Point], argument: float | None = None) -> list[Point]:
    """The rows (time or None, value) of ``func`` over ``points``; [] without points,
    except COUNT (0)."""
    values = [v for _, v in points]
    if not points:
        return [(None, 0)] if func == "count" else []
    start = None
    if func == "count":
        return [(start, len(values))]
    if func == "sum":
        return [(start, sum(values))]
    if func == "mean":
        return [(start, sum(values) / len(values))]
    if func == "stddev":
        if len(values) < 2:
            return [(start, None)]
        return [(start, statistics.stdev(values))]
    if func == "spread":
        return [(start, max(values) - min(values))]
    if func == "median":
        return [(start, statistics.median(values))]
    if func == "mode":
        counts = Counter(values)
        top = max(counts.values())
        return [(start, min(v for v, c in counts.items() if c == top))]
    if func == "distinct":
        return [(start, v) for v in dict.fromkeys(values)]
    if func == "min":
        return [_pick(points, lambda a, b: a[1] < b[1])]
    if func == "max":
        return [_pick(points, lambda a, b: a[1] > b[1])]
    if func == "first":
        return [_pick(points, lambda a, b: a[0] < b[0] or (a[0] == b[0] and a[1] > b[1]))]
    if func == "last":
        return [_pick(points, lambda a, b: a[0] > b[0] or (a[0] == b[0] and a[1] > b[1]))]
    if func == "percentile":
        ordered = sorted(points, key=lambda p: p[1])
        i = math.floor(len(ordered) * float(argument or 0) / 100 + 0.5) - 1
        return [ordered[i]] if 0 <= i < len(ordered) else []
    raise ValueError(f"{func} is not computed from raw points")
