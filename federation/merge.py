"""Merging one pair's points from several shards: time-ordered, one point per
(time, exchange) however many shards (replicas, or old and new owners during a
rebalance) returned it."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from operator import itemgetter

import numpy as np

from federation.types import PricePoint, Series

# (epoch ms, exchange, price)
Row = tuple[int, str, float]
_key = itemgetter(0, 1)


def rows_from_series(series: list[Series]) -> list[Row]:
    """Rows of a ``SELECT price, exchange`` answer (epoch=ms), ordered by (time, exchange)."""
    rows: list[Row] = []
    for s in series:
        columns = s["columns"]
        t, p, e = columns.index("time"), columns.index("price"), columns.index("exchange")
        rows.extend((v[t], v[e], v[p]) for v in s["values"] if v[p] is not None)
    # InfluxDB orders by time; within one time the series order is its own. Timsort makes
    # this nearly free on already-ordered input.
    rows.sort(key=_key)
    return rows


def merge_rows(sources: Iterable[list[Row]]) -> Iterator[Row]:
    """One ordered stream from ordered inputs, dropping repeats of (time, exchange)."""
    last: tuple[int, str] | None = None
    for row in heapq.merge(*sources, key=_key):
        key = (row[0], row[1])
        if key != last:
            last = key
            yield row


def iso_times(epoch_ms: list[int]) -> list[str]:
    """``2022-10-11T01:20:02.951Z`` for each epoch-millisecond time (vectorised)."""
    if not epoch_ms:
        return []
    stamps = np.array(epoch_ms, dtype="int64").astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(stamps, unit="ms").tolist()]


def to_points(rows: list[Row]) -> list[PricePoint]:
    times = iso_times([r[0] for r in rows])
    return [{"price": r[2], "time": t, "exchange": r[1]} for r, t in zip(rows, times, strict=True)]
