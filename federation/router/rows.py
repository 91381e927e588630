"""Rows of one pair's points: read from shards' answers and written as the API's JSON.
(The merge across shards is in :mod:`federation.router.stream`.)

This runs for every point of every answer, so rows stay the lists InfluxDB's JSON
decodes to, ordering uses C key functions (and is only checked, not redone, when the
rows come ordered, as InfluxDB sends them), and a time is formatted once however many
exchanges share it (:func:`federation.core.timefmt.iso_text`).
"""

from __future__ import annotations

from itertools import islice
from operator import itemgetter, lt
from typing import Any, TypedDict

import orjson

from federation.core.timefmt import iso_text
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


def ordered(rows: list[Row]) -> bool:
    """Whether the rows are in strictly increasing (time, exchange) order: sorted, and
    no two share a time and exchange (a C pass, cheaper than sorting)."""
    keys = list(map(ORDER, rows))
    return all(map(lt, keys, islice(keys, 1, None)))


def rows_from_series(series: list[Series]) -> list[Row]:
    """Rows of a ``SELECT price, exchange`` answer (epoch=ms), ordered by (time, exchange)."""
    rows: list[Row] = []
    for s in series:
        if s["columns"] == COLUMNS:
            rows.extend(s["values"])
        else:
            index = [s["columns"].index(c) for c in COLUMNS]
            rows.extend([v[i] for i in index] for v in s["values"])
    # InfluxDB sends one series in (time, exchange) order: checked, not sorted again.
    if len(series) > 1 or not ordered(rows):
        rows.sort(key=ORDER)
    return rows


def to_points(rows: list[Row]) -> list[PricePoint]:
    text = iso_text(map(TIME, rows))
    return [{"price": p, "time": text[t], "exchange": e} for t, p, e in rows]


def encode_points(rows: list[Row]) -> bytes:
    """The rows as JSON array elements (no brackets), to splice into a streamed array."""
    return orjson.dumps(to_points(rows))[1:-1]
