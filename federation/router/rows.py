"""Rows of one pair's points: read from shards' answers and written as the API's JSON.
(The merge across shards is in :mod:`federation.router.stream`.)

This runs for every point of every answer, so rows stay the lists InfluxDB's JSON
decodes to, ordering uses a C key function, and a time is formatted once however many
exchanges share it (:func:`federation.core.timefmt.iso_times`).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, TypedDict

import orjson

from federation.core.timefmt import iso_times
from federation.core.types import Series


class PricePoint(TypedDict):
    """One element of ``prices`` in ``GET /{pair}``."""

    price: float
    time: str
    exchange: str


# [epoch ms, price, exchange]: the columns of ``SELECT "price", "exchange"``.
Row = list[Any]
COLUMNS = ["time", "price", "exchange"]
ORDER = itemgetter(0, 2)  # the answer's order: time, then exchange
TIME = itemgetter(0)


def rows_from_series(series: list[Series]) -> list[Row]:
    """Rows of a ``SELECT price, exchange`` answer (epoch=ms), ordered by (time, exchange)."""
    rows: list[Row] = []
    for s in series:
        if s["columns"] == COLUMNS:
            rows.extend(s["values"])
        else:
            index = [s["columns"].index(c) for c in COLUMNS]
            rows.extend([v[i] for i in index] for v in s["values"])
    # InfluxDB sends time order already; on ordered input this is a single pass.
    rows.sort(key=ORDER)
    return rows


def to_points(rows: list[Row]) -> list[PricePoint]:
    times = iso_times([r[0] for r in rows])
    return [{"price": r[1], "time": t, "exchange": r[2]} for r, t in zip(rows, times, strict=True)]


def encode_points(rows: list[Row]) -> bytes:
    """The rows as JSON array elements (no brackets), to splice into a streamed array."""
    return orjson.dumps(to_points(rows))[1:-1]
