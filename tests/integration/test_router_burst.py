"""A burst of requests past the shard timeout, on real influxd: many shard calls are
cancelled mid-way, and afterwards the router still reaches every shard, its answers are
complete, and the shard client's pool holds no connection in use."""

from __future__ import annotations

import asyncio
import time

import httpx
import httpx2
import numpy as np
import pandas as pd
import pytest

from federation.core.influx import pool_status
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from federation.tools.localcluster import LocalCluster
from ingest.writer import ShardWriter
from tests.asgi import served
from tests.integration.conftest import clients_for, shard_map_for

pytestmark = pytest.mark.integration


def raw_points(now_ms: int, minutes: int = 120) -> pd.DataFrame:
    """btcusd and a few other pairs on 8 exchanges, one point a minute."""
    times = now_ms - 30_000 - 60_000 * np.arange(minutes)
    return pd.concat(
        pd.DataFrame({"time": times, "exchange": f"ex{e}", "pair": p, "price": 100.0 + e})
        for e in range(8)
        for p in ("btcusd", "ethusd", "solusd")
    )


async def test_burst_past_shard_timeout_leaves_answers_complete_and_pool_idle(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    shard_map = shard_map_for(cluster)
    raw = raw_points(int(time.time() * 1000))
    await ShardWriter(shard_map, await clients_for(shard_map, http)).write(raw)
    # Every request of the burst streams at once (past the pool's 100 connections), so
    # shard calls wait and are cut whatever the shards' speed.
    settings = RouterSettings(shard_timeout=0.3, deadline_s=1.0, rank_refresh_s=0, max_streams=900)
    app = create_app(shard_map, settings)
    async with served(app) as client:
        gate = asyncio.Semaphore(300)

        async def one() -> httpx.Response:
            async with gate:
                return await client.get("/btcusd")

        burst = await asyncio.gather(*(one() for _ in range(900)))
        federation = app.state.federation  # the normal requests are not in a hurry
        federation.shard_timeout, federation.deadline_s = 10.0, 30.0
        after = [(await client.get("/btcusd")).json() for _ in range(3)]
        pool = pool_status(app.state.shard_http, app.state.shard_streams)
    assert {r.status_code for r in burst} == {200}
    assert any(r.json()["partial"] for r in burst)  # the burst did cut shard calls
    assert [(a["partial"], len(a["prices"])) for a in after] == [(False, len(raw) // 3)] * 3
    assert (pool.in_use, pool.waiting) == (0, 0)
