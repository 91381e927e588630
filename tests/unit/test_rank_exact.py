"""The rank table equals the rank pandas computes from the raw points of every shard,
after ticks across an hour, a spool replaying late points into held hours and a shard
outage (once it is over: during it, the table says it lacks the shard); and a steady
refresh asks the shards for the newest minute only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from federation.core.durations import Duration
from federation.core.errors import ShardError
from federation.core.influxql import Statement
from federation.core.shardmap import Shard, ShardMap
from federation.core.types import Series
from federation.router.ranktable import RankTable
from ingest.spool import Spool
from ingest.writer import ShardWriter
from tests.fakeshard import FakeShard
from tests.rankoracle import assert_table_of_raw

MINUTE, HOUR = 60_000, 3_600_000
T = 1_700_000_000_000 // HOUR * HOUR + 50 * MINUTE  # ten minutes before an hour
SHARD_MAP = ShardMap(tuple(Shard(f"shard-{c}", f"http://{c}.test") for c in "abc"))
PAIRS = ["btcusd", "ethusd", "adabtc", "solusd", "xrpeur", "dogeusd"]
EXCHANGES = ["kraken", "bitstamp"]


def prices(times: list[int], seed: int) -> pd.DataFrame:
    """Every series at ``times``, random walks of their own scale."""
    rng = np.random.default_rng(seed)
    rows = [
        (t, e, p, 100.0 * (i + 1) + rng.normal(0, i + 1))
        for t in times
        for i, (e, p) in enumerate((e, p) for e in EXCHANGES for p in PAIRS)
    ]
    return pd.DataFrame(rows, columns=["time", "exchange", "pair", "price"])


class Cluster:
    """Three fake shards, a writer with a spool, and the rank table over them."""

    def __init__(self, root: Path) -> None:
        self.fakes = {s.name: FakeShard(s) for s in SHARD_MAP.shards}
        spool = Spool(root)
        self.writer = ShardWriter(SHARD_MAP, self.fakes, spool=spool, backoff_s=0.01)
        self.table = RankTable(self.gather, database="crypto")
        self.changed: list[list[int]] = []
        self.table.on_refreshed.append(lambda hours, _: hours and self.changed.append(hours))

    async def gather(self, statement: Statement) -> tuple[dict[str, list[list[Series]]], set[str]]:
        answers, missing = {}, set()
        for name, fake in self.fakes.items():
            try:
                answers[name] = await fake.query(statement)
            except ShardError:
                missing.add(name)
        return answers, missing

    async def check(self) -> None:
        """Every default window's table equals pandas on the raw points of every shard."""
        raw = pd.concat([f.points for f in self.fakes.values()], ignore_index=True)
        for window in self.table.windows:
            assert_table_of_raw(await self.table.snapshot(window), raw, window.seconds)


def minutes(first: int, last: int, step: int = MINUTE) -> list[int]:
    return list(range(first, last + 1, step))


async def started(root: Path) -> Cluster:
    """26 hours of points every 10 minutes up to T, and the first table as of T."""
    cluster = Cluster(root)
    await cluster.writer.write(prices(minutes(T - 26 * HOUR, T, 10 * MINUTE), seed=1))
    await cluster.table.refresh(T)
    return cluster


@pytest.mark.parametrize("tick_s", [60, 2], ids=["60s-ticks-read-raw", "2s-ticks-aggregated"])
async def test_rank_table_after_ticks_across_an_hour_equals_pandas(
    tmp_path: Path, tick_s: int
) -> None:
    cluster = await started(tmp_path)
    await cluster.check()
    for t in minutes(T + MINUTE, T + 15 * MINUTE):
        await cluster.writer.write(prices(minutes(t - MINUTE + tick_s * 1000, t, tick_s * 1000), t))
        await cluster.table.refresh(t)
        await cluster.check()


async def test_rank_table_counts_a_late_spool_replay_into_held_hours(tmp_path: Path) -> None:
    cluster = await started(tmp_path)
    cluster.fakes["shard-b"].write_answers = [503]  # one tick spooled for shard-b
    wild = prices([T - 3 * HOUR + 1], seed=7).assign(price=lambda f: f.price * 50)
    await cluster.writer.write(wild)  # three hours back, on every owner
    await cluster.table.refresh(T + MINUTE)
    assert await cluster.writer.wait_drained(5)  # shard-b's part lands now, late
    await cluster.table.refresh(T + 2 * MINUTE)
    await cluster.check()
    assert cluster.changed[-1] == [(T - 3 * HOUR) // HOUR * HOUR]


async def test_rank_table_during_and_after_a_shard_outage_equals_pandas(tmp_path: Path) -> None:
    cluster = await started(tmp_path)
    cluster.fakes["shard-c"].down = True
    await cluster.writer.write(prices([T + MINUTE], seed=2))  # shard-c's part is spooled
    await cluster.table.refresh(T + MINUTE)
    during = await cluster.table.snapshot(Duration(24, "h"))
    cluster.fakes["shard-c"].down = False
    assert await cluster.writer.wait_drained(5)
    await cluster.table.refresh(T + 2 * MINUTE)
    await cluster.check()
    assert during is not None
    assert during.missing == {"shard-c"}


@pytest.mark.parametrize(
    ("tick_s", "kinds"),
    [
        (60, ["points_query", "rollup_query", "write_stats_query"]),
        (2, ["count_query", "moments_query", "rollup_query", "write_stats_query"]),
    ],
    ids=["few-points-raw-in-one-statement", "many-points-aggregated"],
)
async def test_steady_refresh_asks_each_shard_for_the_newest_minute_only(
    tmp_path: Path, tick_s: int, kinds: list[str]
) -> None:
    cluster = await started(tmp_path)
    for k in (1, 2):
        asked = len(cluster.fakes["shard-a"].statements)
        t = T + k * MINUTE
        await cluster.writer.write(prices(minutes(t - MINUTE + tick_s * 1000, t, tick_s * 1000), k))
        await cluster.table.refresh(t)
    sent = cluster.fakes["shard-a"].statements[asked:]
    spans = [s.args["span"] for s in sent if s.kind in ("moments_query", "points_query")]
    assert sorted(s.kind for s in sent) == kinds
    assert [(s.start_ms, s.end_ms > T + MINUTE) for s in spans] == [(T + MINUTE, True)]


@pytest.mark.parametrize(("recount_hours", "counts"), [(24, 0), (1, 1)], ids=["daily", "hourly"])
async def test_full_count_without_late_points_only_when_the_recount_is_due(
    tmp_path: Path, recount_hours: int, counts: int
) -> None:
    cluster = await started(tmp_path)
    cluster.table.recount_hours, before = recount_hours, cluster.table.full_counts
    for t in minutes(T + MINUTE, T + 15 * MINUTE):  # across an hour
        await cluster.writer.write(prices([t], seed=t))
        await cluster.table.refresh(t)
    assert cluster.table.full_counts - before == counts
    await cluster.check()
