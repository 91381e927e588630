"""The precomputed rank on real shards equals the rank computed with pandas from the raw
points, for the default windows, windows built on demand, after ticks across an hour and
after late points."""

from __future__ import annotations

import time

import httpx2
import pandas as pd
import pytest

from federation.core.durations import Duration
from federation.core.influxql import Statement
from federation.core.types import Series
from federation.router.ranktable import RankTable
from federation.tools.localcluster import LocalCluster
from ingest.rollup import MinuteRollup
from ingest.writer import ShardWriter
from tests.integration.conftest import clients_for, shard_map_for
from tests.integration.test_router_live import expected_rank, loaded, raw_points
from tests.rankoracle import assert_table_of_raw

pytestmark = pytest.mark.integration


def as_of(body: dict[str, str]) -> int:
    return int(pd.Timestamp(body["rank_as_of"]).value // 1_000_000)


@pytest.mark.parametrize(
    ("pair", "duration", "seconds", "exchange"),
    [
        ("btcusd", "-24h", 86400, None),
        ("adabtc", "-1h", 3600, None),
        ("ethusd", "-24h", 86400, "ex2"),
        ("solusd", "-90m", 5400, None),
        ("xrpeur", "-3h", 10800, "ex4"),
        ("ltcusd", "-3d", 259200, None),
        ("dotusd", "-10m", 600, None),
    ],
    ids=["24h", "1h", "24h-exchange", "90m-on-demand", "3h-exchange", "3d-fallback", "10m"],
)
async def test_precomputed_rank_equals_pandas_on_raw_points(
    cluster: LocalCluster,
    http: httpx2.AsyncClient,
    pair: str,
    duration: str,
    seconds: int,
    exchange: str | None,
) -> None:
    async with loaded(cluster, http, precomputed=True, minutes=300) as (client, raw, _):
        params = {"duration": duration} | ({"exchange": exchange} if exchange else {})
        body = (await client.get(f"/{pair}", params=params)).json()
    assert body["rank"] == expected_rank(raw, pair, seconds, exchange, as_of(body))


async def test_precomputed_rank_counts_late_points_at_the_next_refresh(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    async with loaded(cluster, http, precomputed=True, minutes=300) as (client, raw, shard_map):
        ranks = client._transport.app.state.federation.ranks  # type: ignore[attr-defined]
        late = raw[(raw.pair == "dogeusd") & (raw.time < time.time() * 1000 - 3 * 3600_000)]
        late = late.assign(time=late.time + 1, price=late.price * 50)  # wild, three hours ago
        await ShardWriter(shard_map, await clients_for(shard_map, http)).write(late)
        await ranks.refresh()  # the hour's COUNT moved: it is read again at once
        body = (await client.get("/dogeusd")).json()
    assert body["rank"] == expected_rank(
        pd.concat([raw, late]), "dogeusd", 86400, None, as_of(body)
    )
    assert body["rank"].startswith("1/")


async def test_precomputed_rank_with_shard_down_is_partial(
    own_cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    async with loaded(own_cluster, http, precomputed=True) as (client, _, _):
        own_cluster.stop_shard("shard-b")
        await client._transport.app.state.federation.ranks.refresh()  # type: ignore[attr-defined]
        body = (await client.get("/btcusd")).json()
    assert body["partial"] is True
    assert "shard-b" in body["missing_shards"]


async def test_rank_table_minute_by_minute_with_late_points_equals_pandas(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    shard_map = shard_map_for(cluster)
    clients = await clients_for(shard_map, http)
    writer = ShardWriter(shard_map, clients)

    sent: list[str] = []

    async def gather(statement: Statement) -> tuple[dict[str, list[list[Series]]], set[str]]:
        sent.append(statement.kind)
        answers = {name: await client.query(statement) for name, client in clients.items()}
        return answers, set()

    t = int(time.time() * 1000) // 3_600_000 * 3_600_000 - 2 * 60_000  # before an hour
    raw = raw_points(t, 180)
    await writer.write(raw)
    table = RankTable(gather, database=shard_map.database)
    await table.refresh(t)
    for k in (1, 2, 3):  # ticks across the hour
        tick = raw_points(t + k * 60_000, 1)
        tick = tick.assign(price=tick.price * (1 + k / 100))
        raw = pd.concat([raw, tick])
        await writer.write(tick)
        await table.refresh(t + k * 60_000)
    assert "points_query" in sent  # one tick a minute: the newest minute read raw
    late = raw[raw.time < t - 7_200_000].assign(time=lambda f: f.time + 1, price=9e6)
    await writer.write(late)
    await table.refresh(t + 4 * 60_000)
    for seconds in (3600, 86400):
        assert_table_of_raw(
            await table.snapshot(Duration(seconds, "s")), pd.concat([raw, late]), seconds
        )


async def test_rank_table_from_the_ingesters_rollup_equals_pandas(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    shard_map = shard_map_for(cluster)
    clients = await clients_for(shard_map, http)
    writer = ShardWriter(shard_map, clients)
    sent: list[list[str]] = []

    async def gather(statement: Statement) -> tuple[dict[str, list[list[Series]]], set[str]]:
        sent[-1].append(statement.kind)
        return {name: await client.query(statement) for name, client in clients.items()}, set()

    t = int(time.time() * 1000) // 3_600_000 * 3_600_000 - 5 * 60_000  # before an hour
    raw = raw_points(t, 180)
    await writer.write(raw)
    table = RankTable(gather, database=shard_map.database)
    sent.append([])
    await table.refresh(t)
    rollup = MinuteRollup(60_000)
    for k in (1, 2, 3, 4):  # ticks as the ingester writes them, the rollup with them
        tick = raw_points(t + k * 60_000, 1).assign(price=lambda f, k=k: f.price * (1 + k / 100))
        raw = pd.concat([raw, tick])
        report = await writer.write(tick, rollup.tick(t + k * 60_000, tick, writer))
        await writer.write_lines(rollup.close(t + k * 60_000, report, shard_map))
        sent.append([])
        await table.refresh(t + k * 60_000)
    for seconds in (3600, 86400):
        assert_table_of_raw(await table.snapshot(Duration(seconds, "s")), raw, seconds)
    assert [sorted(kinds) for kinds in sent[1:]] == [["rollup_query", "write_stats_query"]] * 4
