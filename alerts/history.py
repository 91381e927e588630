"""A window's history from the shards, so a restarted detector is not blind for a window.

The shards do the summing: one ``SUM``/``COUNT`` per metric ``GROUP BY time(bucket),
exchange, pair`` over the window, which gives exactly the buckets
:class:`~alerts.window.WindowStats` keeps (InfluxDB aligns ``time()`` buckets to the
epoch, as the ring does). The window is read in slices, all shards in parallel per
slice, so no answer is larger than a slice. A pair held by several shards (replication,
a rebalance in progress) is taken from the shard that holds the most points of it, not
summed twice. A shard that does not answer is logged and skipped: its series start
with an empty window and fill as ticks arrive.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping

import pandas as pd

from alerts.window import BUCKETS
from federation.core.errors import ShardError
from federation.core.influx import ShardClient
from federation.core.influxql import buckets_query

log = logging.getLogger(__name__)

COLUMNS = ["time", "price_sum", "price_count", "volume_sum", "volume_count"]
SLICES = 6


async def load_window(
    clients: Mapping[str, ShardClient], window_s: int, cutoff_ms: int
) -> pd.DataFrame:
    """The buckets of the window ending at ``cutoff_ms`` (excluded): columns exchange,
    pair, time (bucket start, ms), price_sum, price_count, volume_sum, volume_count."""
    if not clients:
        return pd.DataFrame(columns=["exchange", "pair", *COLUMNS])
    bucket_ms = window_s * 1000 // BUCKETS
    first = (cutoff_ms // bucket_ms - BUCKETS) * bucket_ms
    edges = [first + (cutoff_ms - first) * i // SLICES for i in range(SLICES + 1)]
    edges = [first] + [e - e % bucket_ms for e in edges[1:-1]] + [cutoff_ms]
    rows: list[list[object]] = []
    for n, (start, end) in enumerate(itertools.pairwise(edges), 1):
        if start >= end:
            continue
        query = buckets_query(start, end, bucket_ms // 1000)
        answers = await asyncio.gather(
            *(c.query(query) for c in clients.values()), return_exceptions=True
        )
        for name, answer in zip(clients, answers, strict=True):
            if isinstance(answer, ShardError):
                log.warning("alerts history: %s skipped: %s", name, answer)
                continue
            if isinstance(answer, BaseException):
                raise answer
            for series in answer[0]:
                if series["columns"] != COLUMNS:
                    raise ValueError(f"unexpected columns from {name}: {series['columns']}")
                tags = series.get("tags", {})
                extra = [tags.get("exchange", ""), tags.get("pair", ""), name]
                rows += [row + extra for row in series["values"]]
        log.info(
            "alerts history for the %ds window: %3.0f%% (%d of %d slices)",
            window_s,
            100 * n / SLICES,
            n,
            SLICES,
        )
    frame = pd.DataFrame(rows, columns=[*COLUMNS, "exchange", "pair", "shard"])
    if frame.empty:
        return frame[["exchange", "pair", *COLUMNS]]
    frame[COLUMNS[1:]] = frame[COLUMNS[1:]].astype("float64").fillna(0.0)
    # One copy per series: the shard holding the most points of it.
    held = frame.groupby(["exchange", "pair", "shard"], sort=False)["price_count"].sum()
    best = held.reset_index().sort_values("price_count", ascending=False)
    best = best.drop_duplicates(["exchange", "pair"])[["exchange", "pair", "shard"]]
    frame = frame.merge(best, on=["exchange", "pair", "shard"])
    return frame[["exchange", "pair", *COLUMNS]].reset_index(drop=True)
