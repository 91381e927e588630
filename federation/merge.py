"""Rows of one pair's points: read from shards' answers, turned into the API's shape.
(The merge across shards is in :mod:`federation.stream`.)"""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import orjson

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


def iso_times(epoch_ms: list[int]) -> list[str]:
    """``2022-10-11T01:20:02.951Z`` for each epoch-millisecond time (vectorised)."""
    if not epoch_ms:
        return []
    stamps = np.array(epoch_ms, dtype="int64").astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(stamps, unit="ms").tolist()]


def to_points(rows: list[Row]) -> list[PricePoint]:
    times = iso_times([r[0] for r in rows])
    return [{"price": r[2], "time": t, "exchange": r[1]} for r, t in zip(rows, times, strict=True)]


def encode_points(rows: list[Row]) -> bytes:
    """The rows as JSON array elements (no brackets), to splice into a streamed array."""
    return orjson.dumps(to_points(rows))[1:-1]
