"""A simulated market started again over shards that hold its earlier prices: each
series is backfilled from where the shards leave it (a series new to the market, the
whole window), and the market goes on from the last stored prices rather than from the
catalogue's start values, so a restart neither leaves new series empty nor makes
prices jump back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping

import pandas as pd

from federation.core.influx import ShardClient
from federation.core.influxql import last_prices_query
from ingest.loop import Ingester
from ingest.simulated import SimulatedMarket

log = logging.getLogger(__name__)
MINUTE_MS = 60_000


async def last_prices(clients: Mapping[str, ShardClient], window_s: int) -> pd.DataFrame:
    """The newest point (time, exchange, pair, price) of every series any answering
    shard holds within the window."""
    query = last_prices_query(window_s)
    answers = await asyncio.gather(
        *(c.query(query) for c in clients.values()), return_exceptions=True
    )
    rows = [
        (time, series["tags"]["exchange"], series["tags"]["pair"], price)
        for answer in answers
        if not isinstance(answer, BaseException)
        for series in answer[0]
        for time, price in series["values"]
    ]
    frame = pd.DataFrame(rows, columns=["time", "exchange", "pair", "price"])
    return frame.sort_values("time", kind="mergesort").drop_duplicates(
        ["exchange", "pair"], keep="last"
    )


class _Only:
    """A market's history restricted to some of its series; keeps their last rows."""

    def __init__(self, market: SimulatedMarket, series: pd.DataFrame) -> None:
        self.market = market
        self.keys = pd.MultiIndex.from_frame(series[["exchange", "pair"]])
        self.last = series.iloc[0:0]

    def history(
        self, start_ms: int, end_ms: int, step_ms: int = MINUTE_MS
    ) -> Iterator[pd.DataFrame]:
        for frame in self.market.history(start_ms, end_ms, step_ms):
            mine = frame[pd.MultiIndex.from_frame(frame[["exchange", "pair"]]).isin(self.keys)]
            self.last = mine[mine["time"] == mine["time"].max()]
            yield mine


async def backfill_resumed(
    ingester: Ingester,
    market: SimulatedMarket,
    clients: Mapping[str, ShardClient],
    start_ms: int,
    end_ms: int,
) -> None:
    """Fill [start, end) for ``market``'s series from what the shards hold, and set the
    market to go on from the stored prices."""
    last = await last_prices(clients, (end_ms - start_ms) // 1000)
    start_ms -= start_ms % MINUTE_MS
    if last.empty:
        await ingester.backfill(market, start_ms, end_ms)
        return
    latest = int(last["time"].max())
    universe = market.universe
    held = pd.MultiIndex.from_frame(last[["exchange", "pair"]])
    new = universe[~pd.MultiIndex.from_frame(universe).isin(held)]
    if not new.empty:
        # The new series' history up to the newest stored tick, from a market of the
        # same seed: their own path, as a fresh start would have written it.
        log.info("backfilling %d series new to the market", len(new))
        only = _Only(SimulatedMarket(market.series, market.seed, market.step_ms), new)
        await ingester.backfill(only, start_ms, latest + 1)
        last = pd.concat([last, only.last], ignore_index=True)
    market.resume(last)
    begin = max(start_ms, latest + MINUTE_MS)
    begin -= begin % MINUTE_MS
    if begin < end_ms:
        await ingester.backfill(market, begin, end_ms)
