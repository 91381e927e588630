"""The global standard-deviation rank, with the original service's semantics.

Every (exchange, pair) series gets the sample standard deviation of its price over the
window; the series are sorted by it, largest first (series with fewer than two points
have none and sort last; ties sort by exchange then pair, so every shard order gives
the same answer). A pair's rank is 1 + the position of its first series; the
denominator is the number of series. Replicas of a series count once.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from federation.core.types import Series

COLUMNS = ["exchange", "pair", "stddev"]


def table_from_series(answers: Iterable[list[Series]]) -> pd.DataFrame:
    """A rank table from shards' ``STDDEV ... GROUP BY exchange, pair`` answers."""
    rows = [
        (s["tags"]["exchange"], s["tags"]["pair"], s["values"][0][1])
        for series in answers
        for s in series
        if s.get("tags") and s["values"]
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["stddev"] = frame["stddev"].astype("float64")
    return sort_table(frame)


def sort_table(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop_duplicates(["exchange", "pair"])
    ordered = frame.sort_values(
        ["stddev", "exchange", "pair"],
        ascending=[False, True, True],
        na_position="last",
        kind="mergesort",
    )
    return ordered.reset_index(drop=True)


def places(table: pd.DataFrame) -> dict[str, int]:
    """Every pair's rank in the table (1 + the position of its first series), as
    :func:`rank_of` gives one: built with the table, so that a request looks its pair up
    (~1 ms saved an answer at 14,000 series) instead of comparing the whole column."""
    found: dict[str, int] = {}
    for place, pair in enumerate(table["pair"].tolist(), 1):
        found.setdefault(pair, place)
    return found


def rank_of(table: pd.DataFrame, pair: str) -> tuple[int, int] | None:
    """(rank, number of series), or None when the pair has no series in the table."""
    hits = np.flatnonzero(table["pair"].to_numpy() == pair)
    if hits.size == 0:
        return None
    return int(hits[0]) + 1, len(table)
