"""The hot cache on real influxd: its answers against the same router with the cache
off, byte for byte, after a fill, a tick, late points in a closed hour and a map change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import httpx2
import pandas as pd
import pytest
from starlette.applications import Starlette

from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from federation.tools.localcluster import LocalCluster
from ingest.writer import ShardWriter
from tests.asgi import served
from tests.integration.conftest import clients_for, shard_map_for
from tests.integration.test_router_live import raw_points

pytestmark = pytest.mark.integration

PATHS = ["/btcusd", "/btcusd?exchange=ex2", "/ethusd?duration=-12h"]


@asynccontextmanager
async def two_routers(
    shard_map: ShardMap,
) -> AsyncIterator[tuple[list[Starlette], list[httpx.AsyncClient]]]:
    """The router with the cache on and off; their rank refreshed by the test only (the
    next scheduled one is at midnight)."""
    apps = [
        create_app(shard_map, RouterSettings(rank_refresh_s=86400, hot_cache_bytes=size))
        for size in (64 * 1024 * 1024, 0)
    ]
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(served(app)) for app in apps]
        yield apps, clients


async def refreshed(apps: list[Starlette]) -> None:
    """Both rank tables as of the same time, and the cache extended after it."""
    hot, t = apps[0].state.federation.hot, int(time.time() * 1000)
    hot.extended.clear()
    await asyncio.gather(*(app.state.federation.ranks.refresh(t) for app in apps))
    await asyncio.wait_for(hot.extended.wait(), 10)


async def same(clients: list[httpx.AsyncClient]) -> bytes:
    """Every path's answer from both routers, which must be the same bytes."""
    answers = []
    for path in PATHS:
        hot, cold = [(await client.get(path)).content for client in clients]
        assert hot == cold, path
        answers.append(hot)
    return b"".join(answers)


async def test_hot_cache_equals_uncached_on_influxd(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    shard_map = shard_map_for(cluster)
    writer = ShardWriter(shard_map, await clients_for(shard_map, http))
    now = int(time.time() * 1000)
    await writer.write(raw_points(now, minutes=150))
    async with two_routers(shard_map) as (apps, clients):
        await refreshed(apps)
        await same(clients)  # the fill
        tick = raw_points(now + 10_000, minutes=1, seed=8)
        await writer.write(tick.assign(time=now - 500))
        await refreshed(apps)
        await same(clients)
        late = pd.DataFrame({"time": now - 100 * 60_000, "exchange": ["ex-late"], "pair": "btcusd"})
        await writer.write(late.assign(price=1.0, volume=1.0))
        await refreshed(apps)
        assert b'"ex-late"' in await same(clients)
        smaller = ShardMap(shard_map.shards[:2], database=shard_map.database)
        for app in apps:
            await app.state.federation.set_map(smaller)
        await same(clients)
