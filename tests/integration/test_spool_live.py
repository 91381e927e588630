"""The spool against real influxd: a shard stopped while ingesting, an ingester that dies with
batches spooled, a shard that comes back without its database. Afterwards every shard
holds exactly the points the source produced: none lost, none doubled."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx2
import pandas as pd
import pytest

from federation.core.clock import now_ms
from federation.core.influx import InfluxClient
from federation.core.influxql import quote_ident
from federation.core.shardmap import ShardMap
from federation.tools.localcluster import LocalCluster
from ingest.loop import Ingester
from ingest.simulated import SimulatedMarket
from ingest.spool import DEAD_LETTER, Spool
from ingest.writer import ShardWriter
from tests.integration.conftest import clients_for, own_statement, shard_map_for

pytestmark = pytest.mark.integration


async def assert_shards_hold_exactly(
    clients: dict[str, InfluxClient], shard_map: ShardMap, produced: pd.DataFrame
) -> None:
    for name, client in clients.items():
        answer = await client.query(
            own_statement('SELECT "price", "volume", "exchange", "pair" FROM "price"')
        )
        series = answer[0][0]
        held = pd.DataFrame(series["values"], columns=series["columns"])
        owned = produced[[name in shard_map.owners(p) for p in produced["pair"]]]
        assert len(held) == len(owned) > 0
        merged = held.merge(owned, on=["time", "exchange", "pair"], suffixes=("", "_src"))
        assert len(merged) == len(owned)
        assert (merged["price"] == merged["price_src"]).all()
        assert (merged["volume"] == merged["volume_src"]).all()


def make_writer(shard_map: ShardMap, clients: dict[str, InfluxClient], root: Path) -> ShardWriter:
    return ShardWriter(
        shard_map, clients, spool=Spool(root), backoff_s=0.2, drain_backoff_max_s=0.5
    )


async def test_shard_stopped_while_ticking_loses_nothing(
    own_cluster: LocalCluster, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    shard_map = shard_map_for(own_cluster)
    clients = await clients_for(shard_map, http)
    produced: list[pd.DataFrame] = []
    reached = {2: asyncio.Event(), 6: asyncio.Event()}  # ticks done

    async def keep(frame: pd.DataFrame) -> None:
        produced.append(frame)
        if len(produced) in reached:
            reached[len(produced)].set()

    writer = make_writer(shard_map, clients, tmp_path)
    market = SimulatedMarket(series=150, seed=11, step_ms=1000)
    ingester = Ingester(market, writer, interval_s=1, observers=[keep])

    async def outage() -> None:
        await reached[2].wait()
        await asyncio.to_thread(own_cluster.stop_shard, "shard-b")
        await reached[6].wait()  # shard-b misses ticks 3 to 6 at least
        await asyncio.to_thread(own_cluster.start_shard, "shard-b")

    task = asyncio.create_task(outage())
    await ingester.run(asyncio.Event(), max_ticks=10)
    await task
    assert await writer.wait_drained(30)
    await writer.close()
    queue = writer.spool.queue("shard-b")  # type: ignore[union-attr]
    per_tick = sum("shard-b" in shard_map.owners(p) for p in market.universe["pair"])
    assert queue.replayed_points >= 3 * per_tick  # shard-b really missed several ticks
    assert queue.dead_batches == 0
    assert queue.dropped_batches == 0
    assert sum(len(f) for f in produced) == 10 * 150
    await assert_shards_hold_exactly(clients, shard_map, pd.concat(produced, ignore_index=True))


async def spooled_then_crashed(
    own_cluster: LocalCluster, http: httpx2.AsyncClient, root: Path, seed: int
) -> tuple[ShardMap, dict[str, InfluxClient], list[pd.DataFrame]]:
    """Three ticks written while shard-b is down, then the ingester dies: only the spool
    on disk under ``root`` remains. The map, its clients and the ticks."""
    shard_map = shard_map_for(own_cluster)
    clients = await clients_for(shard_map, http)
    market = SimulatedMarket(series=120, seed=seed)
    ticks = [market.snapshot(now_ms() // 60_000 * 60_000 - i * 60_000) for i in range(3)]
    own_cluster.stop_shard("shard-b")
    first = make_writer(shard_map, clients, root)
    for frame in ticks:
        await first.write(frame)
    await first.close()
    return shard_map, clients, ticks


async def test_ingester_crash_replays_spool_into_recreated_database(
    own_cluster: LocalCluster, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    shard_map, clients, ticks = await spooled_then_crashed(own_cluster, http, tmp_path, seed=4)
    await asyncio.to_thread(own_cluster.start_shard, "shard-b")
    await clients["shard-b"].execute(
        own_statement(f"DROP DATABASE {quote_ident(shard_map.database)}")
    )
    second = make_writer(shard_map, clients, tmp_path)
    assert await second.wait_drained(30)
    await assert_shards_hold_exactly(clients, shard_map, pd.concat(ticks, ignore_index=True))


async def test_restart_on_torn_spool_with_shard_drained_stores_everything_once(
    own_cluster: LocalCluster, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    shard_map, clients, ticks = await spooled_then_crashed(own_cluster, http, tmp_path, seed=5)
    # The ingester died mid-append: torn tails on both kinds of file.
    spooled = sorted((tmp_path / "shard-b").glob("*.lp"))
    with spooled[-1].open("ab") as f:
        f.write(b"price,exchange=kraken,pair=btc")
    (tmp_path / "shard-b" / DEAD_LETTER).write_bytes(b"# dead-letter 2026-11-28T10:00:00Z seq=")
    drained = ShardMap(
        tuple(replace(s, drain=s.name == "shard-b") for s in shard_map.shards),
        database=shard_map.database,
    )
    second = make_writer(drained, clients, tmp_path)  # shard-b stays down: owns nothing now
    assert await second.wait_drained(30)
    await second.close()
    held = {"shard-a": clients["shard-a"]}
    await assert_shards_hold_exactly(held, drained, pd.concat(ticks, ignore_index=True))
    assert second.spool.queue("shard-b").torn_files == 2  # type: ignore[union-attr]
