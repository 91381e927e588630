"""The ingester on real influxd shards: placement, counts and values as the source made them."""

from __future__ import annotations

from pathlib import Path

import httpx
import httpx2
import numpy as np
import pandas as pd
import pytest

from federation.core.clock import now_ms
from federation.core.shardmap import ShardMap
from federation.tools import ingester
from federation.tools.localcluster import LocalCluster
from ingest.loop import Ingester
from ingest.simulated import SimulatedMarket
from ingest.writer import ShardWriter
from tests.integration.conftest import clients_for, own_statement, shard_map_for

pytestmark = pytest.mark.integration


async def shard_contents(clients: dict[str, object]) -> dict[str, pd.DataFrame]:
    out = {}
    for name, client in clients.items():
        answer = await client.query(  # type: ignore[attr-defined]
            own_statement('SELECT "price", "volume", "exchange", "pair" FROM "price"')
        )
        series = answer[0]
        out[name] = (
            pd.DataFrame(series[0]["values"], columns=series[0]["columns"])
            if series
            else pd.DataFrame(columns=["time", "price", "volume", "exchange", "pair"])
        )
    return out


@pytest.mark.parametrize("replication", [1, 2], ids=["r1", "r2"])
async def test_backfill_and_tick_store_every_point_on_its_owners(
    cluster: LocalCluster, http: httpx2.AsyncClient, replication: int
) -> None:
    shard_map = shard_map_for(cluster, replication)
    clients = await clients_for(shard_map, http)
    market, produced = SimulatedMarket(series=60, seed=3), []
    ingester = Ingester(market, ShardWriter(shard_map, clients), interval_s=60)
    end = now_ms() // 60_000 * 60_000
    for chunk in market.history(end - 3_600_000, end):
        produced.append(chunk)
        await ingester.writer.write(chunk)
    tick = market.snapshot(end)
    produced.append(tick)
    await ingester.writer.write(tick)
    source = pd.concat(produced, ignore_index=True)
    stored = await shard_contents(clients)
    for name, held in stored.items():
        owned = source[[name in shard_map.owners(p) for p in source.pair]]
        assert len(held) == len(owned) > 0
        merged = held.merge(owned, on=["time", "exchange", "pair"], suffixes=("", "_src"))
        assert len(merged) == len(owned)
        assert (merged.price == merged.price_src).all()
        assert (merged.volume == merged.volume_src).all()


async def test_write_to_stopped_shard_reports_points_not_stored(
    own_cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    shard_map = shard_map_for(own_cluster)
    clients = await clients_for(shard_map, http)
    own_cluster.stop_shard("shard-b")
    writer = ShardWriter(shard_map, clients, retries=1, backoff_s=0.01)
    report = await writer.write(SimulatedMarket(series=50).snapshot(now_ms()))
    assert report.failed["shard-b"] > 0
    assert "shard-b" in report.errors
    assert report.points + report.failed["shard-b"] == 50


async def test_writer_follows_a_new_map_from_the_next_frame(
    cluster4: LocalCluster, http: httpx2.AsyncClient
) -> None:
    grown = shard_map_for(cluster4)
    old = ShardMap(grown.shards[:3], database=grown.database)
    clients = await clients_for(grown, http)
    writer = ShardWriter(old, {n: clients[n] for n in ("shard-a", "shard-b", "shard-c")})
    market, tick = SimulatedMarket(series=80), now_ms() // 60_000 * 60_000
    first = await writer.write(market.snapshot(tick - 60_000))
    writer.set_map(grown, clients)
    second = await writer.write(market.snapshot(tick))
    assert "shard-d" not in first.written
    assert second.written["shard-d"] == sum(
        grown.owners(p) == ["shard-d"] for p in market.universe.pair
    )


def run_ingester(config: Path, series: int) -> None:
    flags = ["--config", str(config), "--series", str(series), "--backfill=-2h", "--once"]
    assert ingester.main([*flags, "--interval", "1", "--no-spool"], env={}) == 0


def stored_points(shard_map: ShardMap) -> pd.DataFrame:
    """Every point of every shard, read over HTTP (the test runs outside an event loop)."""
    frames = []
    for shard in shard_map.shards:
        statement = own_statement('SELECT "price", "exchange", "pair" FROM "price"')
        params = {"db": shard_map.database, "q": statement.text, "epoch": "ms"}
        result = httpx.get(f"{shard.url}/query", params=params).json()["results"][0]
        for series in result.get("series", []):
            frames.append(pd.DataFrame(series["values"], columns=series["columns"]))
    return pd.concat(frames, ignore_index=True)


def test_ingester_restarted_with_more_series_backfills_them_and_goes_on_from_stored_prices(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    shard_map = shard_map_for(cluster)
    config = tmp_path / "shards.yaml"
    config.write_text(
        f"database: {shard_map.database}\nshards:\n"
        + "".join(f"  - {{name: {s.name}, url: '{s.url}'}}\n" for s in shard_map.shards)
    )
    run_ingester(config, 40)
    first = stored_points(shard_map)
    run_ingester(config, 60)
    points = stored_points(shard_map).sort_values("time")
    per_series = points.groupby(["exchange", "pair"]).size()
    assert len(per_series) == 60
    assert per_series.min() >= 120  # the new series have the 2 h window too
    last_before = first.sort_values("time").groupby(["exchange", "pair"])["price"].last()
    after = points[points.time > first.time.max()].groupby(["exchange", "pair"])["price"].first()
    moved = np.log(after[last_before.index] / last_before)
    assert moved.abs().max() < 0.02  # a minute's move, not a jump back to the start values
