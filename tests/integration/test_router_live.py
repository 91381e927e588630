"""The router against real influxd shards, checked against pandas on the raw points."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import httpx2
import numpy as np
import pandas as pd
import pytest

from federation.core.influxql import series_of_pair_query
from federation.core.lineproto import batches, to_lines
from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from federation.tools.localcluster import LocalCluster
from ingest.writer import ShardWriter
from tests.asgi import served
from tests.integration.conftest import clients_for, own_statement, shard_map_for

pytestmark = pytest.mark.integration

EXCHANGES = [f"ex{i}" for i in range(6)]
PAIRS = ["btcusd", "ethusd", "solusd", "adabtc", "dogeusd", "xrpeur", "ltcusd", "dotusd"]


def raw_points(now_ms: int, minutes: int = 120, seed: int = 7) -> pd.DataFrame:
    """Every (exchange, pair) but a few, one point a minute, half a minute off the minute
    so no point sits on a window's edge."""
    rng = np.random.default_rng(seed)
    frames = []
    for e in EXCHANGES:
        for p in PAIRS:
            if rng.random() < 0.15:
                continue
            steps = rng.normal(0, rng.uniform(0.001, 0.05), minutes)
            times = now_ms - 30_000 - 60_000 * np.arange(minutes)[::-1]
            frames.append(
                pd.DataFrame(
                    {
                        "time": times,
                        "exchange": e,
                        "pair": p,
                        "price": 100 * np.exp(np.cumsum(steps)),
                        "volume": rng.uniform(1, 10, minutes),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def expected_rank(
    raw: pd.DataFrame, pair: str, window_s: int, exchange: str | None, as_of: int | None = None
) -> str:
    """The original's rank, computed from the raw points with plain pandas."""
    end = int(time.time() * 1000) if as_of is None else as_of
    cut = raw[(raw["time"] > end - window_s * 1000) & (raw["time"] <= end)]
    if exchange is not None:
        cut = cut[cut["exchange"] == exchange]
    std = cut.groupby(["exchange", "pair"])["price"].std().sort_values(ascending=False)
    pairs = [p for _, p in std.index]
    return f"{pairs.index(pair) + 1}/{len(pairs)}"


@asynccontextmanager
async def loaded(
    local: LocalCluster,
    http: httpx2.AsyncClient,
    replication: int = 1,
    *,
    precomputed: bool = False,
    minutes: int = 120,
) -> AsyncIterator[tuple[httpx.AsyncClient, pd.DataFrame, ShardMap]]:
    """A router over fresh data; the rank per request, or from the table once built."""
    shard_map = shard_map_for(local, replication)
    raw = raw_points(int(time.time() * 1000), minutes)
    report = await ShardWriter(shard_map, await clients_for(shard_map, http)).write(raw)
    assert report.points == len(raw) * replication
    assert not report.failed
    app = create_app(
        shard_map, RouterSettings(shard_timeout=5.0, rank_refresh_s=60 if precomputed else 0)
    )
    async with served(app) as client:
        if precomputed:
            await app.state.federation.ranks.ready.wait()
        yield client, raw, shard_map


@pytest.mark.parametrize(
    ("pair", "duration", "exchange"),
    [
        ("btcusd", "-24h", None),
        ("adabtc", "-1h", None),
        ("ethusd", "-24h", "ex2"),
        ("solusd", "-1h", "ex3"),
    ],
    ids=["24h", "1h", "24h-exchange", "1h-exchange"],
)
async def test_rank_equals_pandas_on_raw_points(
    cluster: LocalCluster,
    http: httpx2.AsyncClient,
    pair: str,
    duration: str,
    exchange: str | None,
) -> None:
    async with loaded(cluster, http) as (client, raw, _):
        params = {"duration": duration} | ({"exchange": exchange} if exchange else {})
        body = (await client.get(f"/{pair}", params=params)).json()
    window = 3600 if duration == "-1h" else 86400
    assert body["rank"] == expected_rank(raw, pair, window, exchange)


@pytest.mark.parametrize(
    ("duration", "exchange"), [("-24h", None), ("-1h", "ex1")], ids=["all", "1h-exchange"]
)
async def test_prices_are_every_raw_point_in_time_order(
    cluster: LocalCluster, http: httpx2.AsyncClient, duration: str, exchange: str | None
) -> None:
    async with loaded(cluster, http, replication=2) as (client, raw, _):
        params = {"duration": duration} | ({"exchange": exchange} if exchange else {})
        body = (await client.get("/btcusd", params=params)).json()
    cut = raw[
        (raw.pair == "btcusd")
        & (raw.time > time.time() * 1000 - (3600_000 if duration == "-1h" else 86400_000))
    ]
    if exchange:
        cut = cut[cut.exchange == exchange]
    cut = cut.sort_values(["time", "exchange"])
    assert [(p["exchange"], p["price"]) for p in body["prices"]] == list(
        zip(cut.exchange, cut.price, strict=True)
    )
    assert body["partial"] is False


@pytest.mark.parametrize("replication", [1, 2, 3], ids=["r1", "r2", "r3"])
async def test_every_pair_lives_on_exactly_its_owners(
    cluster: LocalCluster, http: httpx2.AsyncClient, replication: int
) -> None:
    async with loaded(cluster, http, replication) as (client, _raw, shard_map):
        body = (await client.get("/shards")).json()
        held = {s.name: set() for s in shard_map.shards}
        for name, c in (await clients_for(shard_map, http)).items():
            answer = await c.query(own_statement('SHOW TAG VALUES FROM "price" WITH KEY = "pair"'))
            held[name] = {row[1] for s in answer[0] for row in s["values"]}
    for pair in PAIRS:
        assert {n for n, pairs in held.items() if pair in pairs} == set(shard_map.owners(pair))
    assert all(s["pairs"] > 0 and s["misplaced_pairs"] == 0 for s in body["shards"])


async def test_unknown_pair_is_404_and_injection_is_400(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    async with loaded(cluster, http) as (client, _, _):
        unknown = await client.get("/nopeusd")
        hostile = await client.get("/btcusd", params={"exchange": "x' OR ''='"})
        still = await client.get("/btcusd")
    assert (unknown.status_code, hostile.status_code, still.status_code) == (404, 400, 200)


async def test_pair_on_other_exchange_is_404_naming_exchange(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    async with loaded(cluster, http) as (client, _, _):
        response = await client.get("/btcusd", params={"exchange": "nowhere"})
    assert response.status_code == 404
    assert response.json()["parameter"] == "exchange"


async def test_pairs_lists_every_pair_with_its_exchanges(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    async with loaded(cluster, http) as (client, raw, _):
        body = (await client.get("/pairs")).json()
    expected = raw.groupby("pair")["exchange"].unique()
    assert {p["pair"]: set(p["exchanges"]) for p in body["pairs"]} == {
        pair: set(exchanges) for pair, exchanges in expected.items()
    }


@pytest.mark.parametrize(
    "pair",
    ["a'b", "c\\d", "e f,g=h", 'i"j', "k.l"],
    ids=["quote", "backslash", "lp-special", "dquote", "dot"],
)
async def test_quoting_round_trips_hostile_values(
    cluster: LocalCluster, http: httpx2.AsyncClient, pair: str
) -> None:
    shard_map = shard_map_for(cluster)
    client = next(iter((await clients_for(shard_map, http)).values()))
    frame = pd.DataFrame({"time": [1_000], "exchange": ["x"], "pair": [pair], "price": [1.0]})
    await client.write(batches(to_lines(frame), 10)[0])
    answer = await client.query(series_of_pair_query(pair))
    assert len(answer[0][0]["values"]) == 1


async def test_shard_down_gives_partial_answer_naming_it(
    own_cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    async with loaded(own_cluster, http) as (client, _, shard_map):
        down = shard_map.owners("btcusd")[0]
        own_cluster.stop_shard(down)
        body = (await client.get("/btcusd")).json()
        strict = await client.get("/btcusd", params={"strict": "true"})
    assert (body["partial"], body["missing_shards"], body["prices"]) == (True, [down], [])
    assert strict.status_code == 503


@pytest.mark.parametrize("precomputed", [False, True], ids=["live-rank", "rank-table"])
async def test_replication_two_with_a_shard_down_changes_no_answer(
    own_cluster: LocalCluster, http: httpx2.AsyncClient, precomputed: bool
) -> None:
    async with loaded(own_cluster, http, replication=2, precomputed=precomputed) as (
        client,
        raw,
        _,
    ):
        before = (await client.get("/btcusd")).json()
        own_cluster.stop_shard("shard-a")
        if precomputed:
            await client._transport.app.state.federation.ranks.refresh()  # type: ignore[attr-defined]
        after = (await client.get("/btcusd")).json()
    assert (after["partial"], after["missing_shards"]) == (False, [])
    assert (after["rank"], after["prices"]) == (before["rank"], before["prices"])
    assert len(after["prices"]) == int((raw.pair == "btcusd").sum())
