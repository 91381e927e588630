"""The rank table read from the ingester's minute rollup: equal to pandas on the raw
points after ticks, an outage and late points, while a steady refresh asks the shards
for the rollup and the write counters only; a minute the rollup lacks is read as
before."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from federation.core.influxql import TimeRange, bucket_counts_query
from federation.router.rankreads import Reader, counts_by_bucket
from ingest.loop import Ingester
from ingest.rollup import MinuteRollup
from tests.unit.test_rank_exact import MINUTE, Cluster, T, minutes, prices, started

READS = {"points_query", "moments_query", "count_query", "bucket_counts_query"}


class Market:
    """Every series at each tick (a new walk per tick), plus ``extra`` rows once."""

    def __init__(self) -> None:
        self.extra: pd.DataFrame | None = None

    def snapshot(self, time_ms: int) -> pd.DataFrame:
        frame = prices([time_ms], seed=time_ms % 1000)
        if self.extra is not None:
            frame, self.extra = pd.concat([frame, self.extra], ignore_index=True), None
        return frame


async def ingesting(tmp_path: Path, tick_s: int) -> tuple[Cluster, Ingester, Market]:
    cluster = await started(tmp_path)
    market = Market()
    ingester = Ingester(
        market, cluster.writer, interval_s=tick_s, rollup=MinuteRollup(tick_s * 1000)
    )
    return cluster, ingester, market


async def minute(cluster: Cluster, ingester: Ingester, t: int) -> list[str]:
    """The ticks of the minute ending at ``t``, then the refresh as of ``t``: the kinds
    of statement shard-a was sent by the refresh."""
    for tick in minutes(t - MINUTE + ingester.interval_ms, t, ingester.interval_ms):
        await ingester.tick(tick)
    asked = len(cluster.fakes["shard-a"].statements)
    await cluster.table.refresh(t)
    return sorted(s.kind for s in cluster.fakes["shard-a"].statements[asked:])


@pytest.mark.parametrize("tick_s", [60, 2], ids=["60s-ticks", "2s-ticks"])
async def test_rank_from_the_rollup_equals_pandas_and_reads_it_only(
    tmp_path: Path, tick_s: int
) -> None:
    cluster, ingester, _ = await ingesting(tmp_path, tick_s)
    asked = [await minute(cluster, ingester, t) for t in minutes(T + MINUTE, T + 12 * MINUTE)]
    await cluster.check()
    # At T + 11m the 24 h window reaches a new hour, whose minutes (written before the
    # ingester ran: no rollup) are read from the prices, once.
    steady = asked[:10] + asked[11:]
    assert all(kinds == ["rollup_query", "write_stats_query"] for kinds in steady)


async def test_rolled_up_minutes_are_taken_only_when_they_tell_the_hours_counts(
    tmp_path: Path,
) -> None:
    cluster, ingester, _ = await ingesting(tmp_path, 60)
    for t in minutes(T + MINUTE, T + 71 * MINUTE):
        await ingester.tick(t)
    hour = TimeRange(T + 10 * MINUTE, T + 70 * MINUTE, False, True)
    counts = counts_by_bucket((await cluster.gather(bucket_counts_query(hour, 3600)))[0])
    reader = Reader(cluster.gather)
    parts = await reader.rolled_up(hour, counts[hour.start_ms])
    assert parts is not None
    assert sorted(parts) == list(range(hour.start_ms, hour.end_ms, MINUTE))
    wrong = {name: n + 1 for name, n in counts[hour.start_ms].items()}
    assert await reader.rolled_up(hour, wrong) is None


async def test_rank_from_the_rollup_after_a_shard_outage_equals_pandas(tmp_path: Path) -> None:
    cluster, ingester, _ = await ingesting(tmp_path, 60)
    await minute(cluster, ingester, T + MINUTE)
    cluster.fakes["shard-c"].down = True
    await minute(cluster, ingester, T + 2 * MINUTE)  # shard-c's prices and rollup spooled
    during = await cluster.table.snapshot(cluster.table.windows[1])
    cluster.fakes["shard-c"].down = False
    assert await cluster.writer.wait_drained(5)
    await minute(cluster, ingester, T + 3 * MINUTE)
    await cluster.check()
    assert during is not None
    assert during.missing == {"shard-c"}


async def test_rank_counts_points_the_source_sent_late(tmp_path: Path) -> None:
    cluster, ingester, market = await ingesting(tmp_path, 60)
    await minute(cluster, ingester, T + MINUTE)
    market.extra = prices([T - 2 * 3_600_000 + 1], seed=9).assign(price=lambda f: f.price * 40)
    kinds = await minute(cluster, ingester, T + 2 * MINUTE)
    await cluster.check()
    assert "bucket_counts_query" in kinds  # the tick row's ``late`` made it count


async def test_rank_without_a_whole_rollup_reads_the_shards(tmp_path: Path) -> None:
    cluster, ingester, _ = await ingesting(tmp_path, 2)
    # The first tick mid-minute: that minute is never rolled up.
    await ingester.tick(T + 30_000)
    kinds = await minute(cluster, ingester, T + MINUTE)
    await cluster.check()
    assert READS & set(kinds)
