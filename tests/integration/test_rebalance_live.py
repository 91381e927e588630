"""Growing a three-shard federation by one shard, and draining one, on real influxd."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pandas as pd
import pytest

from federation.core.clock import now_ms
from federation.core.influx import InfluxClient
from federation.core.shardmap import Shard, ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from federation.tools.localcluster import LocalCluster
from federation.tools.rebalance import Move, Rebalancer
from ingest.simulated import SimulatedMarket
from ingest.writer import ShardWriter
from tests.asgi import served
from tests.integration.conftest import clients_for, own_statement, shard_map_for

pytestmark = pytest.mark.integration


class Interrupted(Exception):
    pass


async def seeded(
    local: LocalCluster, http: httpx2.AsyncClient, hours: int = 3
) -> tuple[ShardMap, ShardMap, pd.DataFrame, dict[str, InfluxClient]]:
    """Data written under the first three shards' map; the four-shard map to move it to."""
    grown = shard_map_for(local)
    old = ShardMap(grown.shards[:3], database=grown.database)
    end = now_ms() // 60_000 * 60_000
    raw = pd.concat(SimulatedMarket(series=80, seed=5).history(end - hours * 3_600_000, end))
    clients = await clients_for(grown, http)
    await ShardWriter(old, clients).write(raw)
    return old, grown, raw, clients


async def holdings(clients: dict[str, InfluxClient]) -> pd.DataFrame:
    """Per shard and series: points and the sum of price."""
    rows = []
    for name, client in clients.items():
        answer = await client.query(
            own_statement(
                'SELECT COUNT("price"), SUM("price") FROM "price" GROUP BY "exchange", "pair"'
            )
        )
        rows += [
            (name, s["tags"]["exchange"], s["tags"]["pair"], *s["values"][0][1:]) for s in answer[0]
        ]
    return pd.DataFrame(rows, columns=["shard", "exchange", "pair", "count", "sum"])


def assert_exactly_once_on_owners(
    held: pd.DataFrame, raw: pd.DataFrame, shard_map: ShardMap
) -> None:
    assert all(row.shard in shard_map.owners(row.pair) for row in held.itertuples())
    expected = raw.groupby(["exchange", "pair"])["price"].agg(["count", "sum"])
    got = held.groupby(["exchange", "pair"])[["count", "sum"]].sum()
    assert (got["count"] == expected["count"]).all()
    assert len(got) == len(expected)
    assert all(
        math.isclose(a, b, rel_tol=1e-12) for a, b in zip(got["sum"], expected["sum"], strict=True)
    )


async def test_plan_lists_exactly_the_pairs_the_new_shard_wins(
    cluster4: LocalCluster, http: httpx2.AsyncClient
) -> None:
    old, grown, raw, clients = await seeded(cluster4, http)
    moves = await Rebalancer(grown, clients).plan()
    counts = raw.groupby("pair").size()
    expected = {
        Move(
            p,
            old.owners(p)[0],
            tuple(grown.owners(p)),
            raw[raw.pair == p].exchange.nunique(),
            int(counts[p]),
        )
        for p in counts.index
        if old.owners(p) != grown.owners(p)
    }
    assert set(moves) == expected
    assert {m.targets for m in moves} == {("shard-d",)}


async def test_rebalance_leaves_every_point_once_on_its_owners(
    cluster4: LocalCluster, http: httpx2.AsyncClient
) -> None:
    _, grown, raw, clients = await seeded(cluster4, http)
    rebalancer = Rebalancer(grown, clients, window_ns=3_600_000_000_000)
    report = await rebalancer.run(await rebalancer.plan())
    assert not report.failed
    assert_exactly_once_on_owners(await holdings(clients), raw, grown)
    assert await rebalancer.plan() == []


@pytest.mark.parametrize(
    "stage", ["window", "copied", "verified"], ids=["mid-copy", "after-copy", "after-verify"]
)
async def test_rebalance_killed_then_rerun_loses_and_doubles_nothing(
    cluster4: LocalCluster, http: httpx2.AsyncClient, stage: str
) -> None:
    _, grown, raw, clients = await seeded(cluster4, http)
    calls = []

    def crash(at: str, move: Move) -> None:
        calls.append(at)
        if at == stage and calls.count(stage) == 3:
            raise Interrupted(at)

    first = Rebalancer(grown, clients, window_ns=3_600_000_000_000, checkpoint=crash)
    moves = await first.plan()
    with pytest.raises(Interrupted):
        await first.run(moves)
    again = Rebalancer(grown, clients)
    assert not (await again.run(await again.plan())).failed
    assert_exactly_once_on_owners(await holdings(clients), raw, grown)


async def test_rebalance_process_killed_then_rerun_loses_and_doubles_nothing(
    cluster4: LocalCluster, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    _, grown, raw, clients = await seeded(cluster4, http, hours=12)
    config = tmp_path / "shards.yaml"
    config.write_text(
        f"database: {grown.database}\nshards:\n"
        + "".join(f"  - {{name: {s.name}, url: '{s.url}'}}\n" for s in grown.shards)
    )
    command = [
        sys.executable,
        "-m",
        "federation",
        "--config",
        str(config),
        "rebalance",
        "--window",
        "1h",
    ]
    env = os.environ | {"PYTHONPATH": "."}
    first = await asyncio.create_subprocess_exec(*command, stdout=subprocess.DEVNULL, env=env)
    await asyncio.sleep(1.5)  # imports, the plan, then part of the copies
    if first.returncode is None:
        first.send_signal(signal.SIGKILL)
    await first.wait()
    rerun = await asyncio.to_thread(subprocess.run, command, capture_output=True, env=env)
    assert rerun.returncode == 0, rerun.stdout.decode()[-500:]
    assert_exactly_once_on_owners(await holdings(clients), raw, grown)


async def test_queries_during_rebalance_return_every_point(
    cluster4: LocalCluster, http: httpx2.AsyncClient
) -> None:
    old, grown, raw, clients = await seeded(cluster4, http)
    moving = sorted({p for p in raw.pair if old.owners(p) != grown.owners(p)})[:3]
    rebalancer = Rebalancer(grown, clients, window_ns=1_800_000_000_000)
    app = create_app(grown, RouterSettings(rank_refresh_s=0))
    seen: list[int] = []
    async with served(app) as router:
        task = asyncio.create_task(rebalancer.run(await rebalancer.plan()))
        while not task.done():
            for pair in moving:
                body = (await router.get(f"/{pair}")).json()
                seen.append(len(body["prices"]) - int((raw.pair == pair).sum()))
        await task
    assert seen
    assert set(seen) == {0}


async def test_draining_shard_ends_empty(cluster4: LocalCluster, http: httpx2.AsyncClient) -> None:
    old, _, raw, clients = await seeded(cluster4, http)
    shards = old.shards
    draining = ShardMap(
        (*shards[:2], Shard(shards[2].name, shards[2].url, drain=True)), database=old.database
    )
    rebalancer = Rebalancer(draining, {n: clients[n] for n in ("shard-a", "shard-b", "shard-c")})
    await rebalancer.run(await rebalancer.plan())
    held = await holdings(clients)
    assert "shard-c" not in set(held.shard)
    assert_exactly_once_on_owners(held, raw, draining)


async def test_raising_replication_copies_every_pair_to_its_new_owner(
    cluster4: LocalCluster, http: httpx2.AsyncClient
) -> None:
    old, _, raw, clients = await seeded(cluster4, http)
    doubled = ShardMap(old.shards, database=old.database, replication=2)
    rebalancer = Rebalancer(doubled, {n: clients[n] for n in ("shard-a", "shard-b", "shard-c")})
    moves = await rebalancer.plan()
    assert {m.delete for m in moves} == {False}
    await rebalancer.run(moves)
    held = await holdings(clients)
    assert all(set(held[held.pair == p].shard) == set(doubled.owners(p)) for p in set(raw.pair))
    assert held["count"].sum() == 2 * len(raw)
    assert await rebalancer.plan() == []
