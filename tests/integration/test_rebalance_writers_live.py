"""The rebalance while points keep arriving, on real influxd: an ingester writing every
second under the new map, and a lagging spool still writing into the old owners."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import httpx2
import numpy as np
import pandas as pd

from federation.core.clock import now_ms
from federation.core.influx import InfluxClient
from federation.core.lineproto import batches, to_lines
from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from federation.tools.localcluster import LocalCluster
from federation.tools.rebalance import Move, Rebalancer
from ingest.writer import ShardWriter
from tests.asgi import served
from tests.integration.test_rebalance_live import (
    assert_exactly_once_on_owners,
    holdings,
    pytestmark,
    seeded,
)

__all__ = ["pytestmark"]
HOUR_NS = 3_600_000_000_000


class LaggingSpool:
    """At the rebalance's checkpoints ``stages``, once a stage per pair, writes one point
    of the pair being moved straight into its old owner, at a past time inside the
    range being copied: what a spool for the old owner, still draining after the map
    changed, writes."""

    def __init__(self, shard_map: ShardMap, raw: pd.DataFrame, stages: set[str]) -> None:
        self.urls = {s.name: s.url for s in shard_map.shards}
        self.database = shard_map.database
        self.raw, self.stages = raw, stages
        self.first_ms = int(raw["time"].min())
        self.done: set[tuple[str, str]] = set()
        self.written: list[dict[str, object]] = []

    def __call__(self, stage: str, move: Move) -> None:
        if stage not in self.stages or (move.pair, stage) in self.done:
            return
        self.done.add((move.pair, stage))
        exchange = self.raw.loc[self.raw.pair == move.pair, "exchange"].iloc[0]
        # Half a minute off the minute grid: a point the source did not hold before.
        point = {
            "time": self.first_ms + 30_000 + len(self.written) * 60_000,
            "exchange": exchange,
            "pair": move.pair,
            "price": 1_000.0 + len(self.written),
        }
        line = batches(to_lines(pd.DataFrame([point])), 10)[0]
        # The checkpoint is synchronous: the write is done before the rebalance goes on.
        params = {"db": self.database, "precision": "ms"}
        httpx.post(
            f"{self.urls[move.source]}/write", params=params, content=line
        ).raise_for_status()
        self.written.append(point)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.written)


@contextmanager
def ticking(
    shard_map: ShardMap, clients: dict[str, InfluxClient], raw: pd.DataFrame
) -> Iterator[list[pd.DataFrame]]:
    """An ingester under ``shard_map``: every series, a point every second, to its owners."""
    series = raw[["exchange", "pair"]].drop_duplicates().reset_index(drop=True)
    writer, ticks, rng = ShardWriter(shard_map, clients), [], np.random.default_rng(7)

    async def run() -> None:
        while True:
            t = now_ms() // 1000 * 1000
            frame = series.assign(time=t, price=rng.uniform(1, 100, len(series)))
            await writer.write(frame)
            ticks.append(frame)
            await asyncio.sleep((t + 1000 - now_ms()) / 1000)

    task = asyncio.get_running_loop().create_task(run())
    try:
        yield ticks
    finally:
        task.cancel()


async def test_rebalance_keeps_a_point_written_into_the_source_after_verification(
    cluster4: LocalCluster, http: httpx2.AsyncClient
) -> None:
    _, grown, raw, clients = await seeded(cluster4, http, hours=1)
    spool = LaggingSpool(grown, raw, {"verified"})
    rebalancer = Rebalancer(grown, clients, window_ns=HOUR_NS, checkpoint=spool)
    report = await rebalancer.run(await rebalancer.plan())
    assert not report.failed
    assert spool.written
    everything = pd.concat([raw, spool.frame()])
    assert_exactly_once_on_owners(await holdings(clients), everything, grown)


async def test_rebalance_leaves_no_misplaced_pair_in_the_index(
    cluster4: LocalCluster, http: httpx2.AsyncClient
) -> None:
    _, grown, _, clients = await seeded(cluster4, http, hours=1)
    rebalancer = Rebalancer(grown, clients, window_ns=HOUR_NS)
    await rebalancer.run(await rebalancer.plan())
    app = create_app(grown, RouterSettings(rank_refresh_s=0))
    async with served(app) as router:
        shards = (await router.get("/shards")).json()["shards"]
    assert [s["misplaced_pairs"] for s in shards] == [0, 0, 0, 0]


async def test_rebalance_with_writers_on_every_shard_leaves_every_point_once_on_its_owners(
    cluster4: LocalCluster, http: httpx2.AsyncClient
) -> None:
    _, grown, raw, clients = await seeded(cluster4, http, hours=2)
    spool = LaggingSpool(grown, raw, {"window", "copied", "verified", "deleted"})
    rebalancer = Rebalancer(grown, clients, window_ns=HOUR_NS, checkpoint=spool)
    app = create_app(grown, RouterSettings(rank_refresh_s=0))
    async with served(app) as router:
        with ticking(grown, clients, raw) as ticks:
            await asyncio.sleep(1.5)  # the ingester writes before, during and after the move
            report = await rebalancer.run(await rebalancer.plan())
            ended = time.monotonic()
            misplaced = None
            while misplaced != 0 and time.monotonic() - ended < 5:
                shards = (await router.get("/shards")).json()["shards"]
                misplaced = sum(s["misplaced_pairs"] for s in shards)
            await asyncio.sleep(1.5)
        await asyncio.sleep(0.5)  # the last tick's write, if one was under way
    assert (report.failed, misplaced) == ({}, 0)
    assert len(ticks) >= 3
    assert len(spool.written) == 4 * len({m.pair for m in report.moved})
    everything = pd.concat([raw, spool.frame(), *ticks])
    assert_exactly_once_on_owners(await holdings(clients), everything, grown)
