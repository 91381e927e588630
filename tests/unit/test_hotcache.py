"""The hot cache over fake shards on the fake clock: its answers against the same router
with the cache off (the oracle), byte for byte, through ticks, late points, an outage
and a map change; its bound; what it never keeps; what it serves."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
import numpy as np
import pandas as pd
import pytest
from starlette.applications import Starlette

from federation.core.shardmap import Shard, ShardMap
from federation.router.app import create_app
from federation.router.fanout import Federation
from federation.router.settings import RouterSettings
from tests.asgi import served
from tests.clock import FakeClock
from tests.fakeshard import FakeShard, connect_to

MINUTE = 60_000
START = 1_700_000_000_000 // MINUTE * MINUTE + 10_000  # 10 s past a minute
SHARDS = tuple(Shard(f"shard-{c}", f"http://shard-{c}:8086") for c in "abc")
MAP = ShardMap(SHARDS)
SERIES = {
    "btcusd": ["ex-a", "ex-b", "ex-c"],
    "ethusd": ["ex-a", "ex-b"],
    "adausd": ["ex-a", "ex-b"],
    "solusd": ["ex-c"],
}
HISTORY = 180  # minutes of points before START


def points(times: list[int], pairs: dict[str, list[str]] = SERIES, seed: int = 1) -> pd.DataFrame:
    """A point per time of every (exchange, pair), prices of random spreads."""
    rng = np.random.default_rng(seed)
    frames = [
        pd.DataFrame(
            {"time": times, "exchange": e, "pair": p, "price": rng.normal(100, rng.uniform(1, 9))}
        )
        for p, exchanges in pairs.items()
        for e in exchanges
    ]
    return pd.concat(frames, ignore_index=True)


def place(
    frame: pd.DataFrame, fakes: dict[str, FakeShard], shard_map: ShardMap = MAP, skip: str = ""
) -> None:
    """Each pair's rows on its owners (but ``skip``), as the writer deals them."""
    for pair, rows in frame.groupby("pair"):
        for owner in shard_map.owners(str(pair)):
            if owner != skip:
                fakes[owner].seed(rows)


@dataclass
class Routers:
    """The same router twice over the same shards and clock: the cache on, and off."""

    clock: FakeClock
    fakes: dict[str, FakeShard]
    hot: httpx.AsyncClient
    cold: httpx.AsyncClient
    apps: tuple[Starlette, Starlette]

    @property
    def federation(self) -> Federation:
        federation: Federation = self.apps[0].state.federation
        return federation

    async def both(self, path: str) -> tuple[bytes, bytes]:
        """One answer of each, at the same virtual time (the fake shards' now() too)."""
        for fake in self.fakes.values():
            fake.now_ms = self.clock.now_ms()
        hot, cold = await self.hot.get(path), await self.cold.get(path)
        assert (hot.status_code, cold.status_code) == (200, 200)
        return hot.content, cold.content

    async def tick(self, skip: str = "", shard_map: ShardMap = MAP) -> pd.DataFrame:
        """The next minute's points written, then the refresh 2 s after it (and the
        extension it wakes) run."""
        boundary = (self.clock.now_ms() // MINUTE + 1) * MINUTE
        await self.clock.advance((boundary - self.clock.now_ms()) / 1000)
        frame = points([boundary], seed=boundary // MINUTE)
        place(frame, self.fakes, shard_map, skip)
        await self.clock.advance(3)
        return frame

    def hits(self) -> float:
        return self.federation.metrics.hot_cache_hits._value.get()


@asynccontextmanager
async def routers(hot_cache_bytes: int = 64 * 1024 * 1024, **kw: object) -> AsyncIterator[Routers]:
    clock = FakeClock(START)
    fakes = {s.name: FakeShard(s, now_ms=START) for s in SHARDS}
    times = [START - 10_000 - MINUTE * m for m in range(HISTORY, 0, -1)]
    place(points(times), fakes)
    apps = tuple(
        create_app(
            MAP,
            RouterSettings(shard_timeout=1, rank_refresh_s=60, hot_cache_bytes=size, **kw),
            connect_to(fakes),
            clock,
        )
        for size in (hot_cache_bytes, 0)
    )
    async with AsyncExitStack() as stack:
        hot, cold = [await stack.enter_async_context(served(app)) for app in apps]
        for app in apps:
            await app.state.federation.ranks.tried.wait()
        yield Routers(clock, fakes, hot, cold, (apps[0], apps[1]))


async def test_hot_cache_equals_uncached_through_ticks_late_points_outage_and_map_change() -> None:
    async with routers() as r:
        hot, cold = await r.both("/btcusd")
        assert hot == cold
        assert r.federation.hot is not None
        assert "btcusd" in r.federation.hot.entries
        for _ in range(3):
            await r.tick()
            assert len({*await r.both("/btcusd")}) == 1
        # A spool replaying: ex-d's points of a held hour, long closed, land late.
        late = points([START - 90 * MINUTE + i * MINUTE for i in range(5)], {"btcusd": ["ex-d"]})
        place(late, r.fakes)
        await r.tick()
        hot, cold = await r.both("/btcusd")
        assert hot == cold
        assert b'"ex-d"' in hot
        # An outage of the pair's owner: partial, never cached; back, its missed ticks replayed.
        owner = MAP.owners("btcusd")[0]
        r.fakes[owner].down = True
        missed = [await r.tick(skip=owner) for _ in range(2)]
        assert len({*await r.both("/btcusd")}) == 1
        assert "btcusd" not in r.federation.hot.entries
        r.fakes[owner].down = False
        await r.tick()
        assert len({*await r.both("/btcusd")}) == 1
        assert "btcusd" in r.federation.hot.entries
        place(pd.concat(missed), r.fakes)
        await r.tick()
        assert len({*await r.both("/btcusd")}) == 1
        # A fourth shard joins, holding points no other shard has; then it leaves the map.
        grown = ShardMap((*SHARDS, Shard("shard-d", "http://shard-d:8086")))
        for shard_map in (grown, MAP):
            for app in r.apps:
                await app.state.federation.set_map(shard_map)
            if shard_map is grown:
                r.fakes["shard-d"].seed(points([START - 60 * MINUTE], {"btcusd": ["ex-e"]}))
                await r.tick(shard_map=grown)
            hot, cold = await r.both("/btcusd")  # at once: no refresh since the change
            assert hot == cold
            assert (b'"ex-e"' in hot) == (shard_map is grown)


async def test_hot_cache_answer_is_stale_until_the_next_extension() -> None:
    async with routers() as r:
        await r.both("/btcusd")
        boundary = (r.clock.now_ms() // MINUTE + 1) * MINUTE
        await r.clock.advance((boundary - r.clock.now_ms()) / 1000)
        place(points([boundary]), r.fakes)
        hot, cold = await r.both("/btcusd")
        assert hot != cold  # the tick is not in the cache before the refresh after it
        await r.clock.advance(3)
        assert len({*await r.both("/btcusd")}) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/btcusd?exchange=ex-b",
        "/btcusd?duration=-1h",
        "/btcusd?duration=-90m&exchange=ex-c",
        "/btcusd?duration=-24h",
        "/btcusd?strict=true",
    ],
    ids=["exchange", "shorter", "shorter-exchange", "default-spelled", "strict"],
)
async def test_hot_cache_serves_exchange_and_shorter_windows_as_uncached(path: str) -> None:
    async with routers() as r:
        await r.both("/btcusd")  # the fill
        hits = r.hits()
        hot, cold = await r.both(path)
    assert (hot, r.hits()) == (cold, hits + 1)


@pytest.mark.parametrize(
    "path",
    ["/btcusd?duration=-25h", "/btcusd?exchange=ex-z", "/nopeusd"],
    ids=["longer", "other-exchange", "unknown"],
)
async def test_hot_cache_other_answers_go_the_uncached_way(path: str) -> None:
    async with routers() as r:
        await r.both("/btcusd")
        hits = r.hits()
        for fake in r.fakes.values():
            fake.now_ms = r.clock.now_ms()
        hot, cold = await r.hot.get(path), await r.cold.get(path)
    assert (hot.status_code, hot.content, r.hits()) == (cold.status_code, cold.content, hits)


async def test_hot_cache_fill_with_a_shard_missing_is_not_kept() -> None:
    async with routers() as r:
        non_owner = next(s.name for s in SHARDS if s.name not in MAP.owners("btcusd"))
        r.fakes[non_owner].down = True
        hot, cold = await r.both("/btcusd")
        assert hot == cold
        assert r.federation.hot is not None
        assert "btcusd" not in r.federation.hot.entries


async def test_hot_cache_concurrent_first_requests_share_one_fill() -> None:
    async with routers() as r:
        answers = await asyncio.gather(*(r.hot.get("/btcusd") for _ in range(5)))
        fills = [
            s for f in r.fakes.values() for s in f.statements if s.kind == "prices_range_query"
        ]
    assert len({a.content for a in answers}) == 1
    assert len(fills) == len(SHARDS)


async def test_hot_cache_keeps_within_its_bound_dropping_least_recent() -> None:
    async with routers() as r:
        await r.both("/ethusd")
        hot = r.federation.hot
        assert hot is not None
        hot.max_bytes = hot.entries["ethusd"].nbytes * 3 // 2  # room for one of two alike
        await r.both("/adausd")
        assert list(hot.entries) == ["adausd"]
        hot_body, cold_body = await r.both("/ethusd")
        metrics = (await r.hot.get("/metrics")).text
    assert list(hot.entries) == ["ethusd"]
    assert hot_body == cold_body
    assert f"federation_hot_cache_bytes {float(hot.entries['ethusd'].nbytes)}" in metrics
    assert hot.entries["ethusd"].nbytes <= hot.max_bytes


async def test_hot_cache_answer_takes_no_stream_slot() -> None:
    async with routers(max_streams=1) as r:
        await r.both("/btcusd")
        r.apps[0].state.streams.acquire(None)  # the one slot, held by a reading client
        response = await r.hot.get("/btcusd")
    assert response.status_code == 200


async def test_hot_cache_gzips_for_clients_that_accept_it() -> None:
    async with routers() as r:
        plain, _ = await r.both("/btcusd")
        headers = {"Accept-Encoding": "gzip"}
        async with r.hot.stream("GET", "/btcusd", headers=headers) as response:
            wire = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(wire) == plain


async def test_hot_cache_off_when_its_bound_is_zero() -> None:
    async with routers(hot_cache_bytes=0) as r:
        assert r.federation.hot is None
