"""The router in-process, over fake shards: for faults a real server cannot be made to
show on demand (a shard down, a shard too slow). Real answers are tested on real influxd
in tests/integration."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pandas as pd
import pytest

from federation.core.clock import now_ms
from federation.core.shardmap import Shard, ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from tests.asgi import served
from tests.fakeshard import FakeShard, connect_to

SHARDS = tuple(Shard(f"shard-{c}", f"http://shard-{c}:8086") for c in "abc")
NOW = 1_700_000_000_000


def fake_shards(down: Collection[str] = (), slow: Collection[str] = ()) -> dict[str, FakeShard]:
    """Healthy shards, each holding btcusd (one point, now) on an exchange named after it."""
    fakes = {}
    for shard in SHARDS:
        fake = FakeShard(shard, now_ms=NOW)
        fake.seed(
            pd.DataFrame({"time": [NOW], "exchange": shard.name, "pair": "btcusd", "price": 100.0})
        )
        fake.down = shard.name in down
        fake.delay_s = 5.0 if shard.name in slow else 0.0
        fakes[shard.name] = fake
    return fakes


@asynccontextmanager
async def router(
    fakes: dict[str, FakeShard], replication: int = 1
) -> AsyncIterator[httpx.AsyncClient]:
    settings = RouterSettings(shard_timeout=0.3, rank_refresh_s=0)  # rank per request
    app = create_app(ShardMap(SHARDS, replication=replication), settings, connect_to(fakes))
    async with served(app) as client:
        yield client


async def test_pair_merges_every_shard() -> None:
    async with router(fake_shards()) as client:
        body = (await client.get("/btcusd")).json()
    assert [p["exchange"] for p in body["prices"]] == ["shard-a", "shard-b", "shard-c"]
    assert (body["rank"], body["partial"], body["duration"]) == ("1/3", False, "-24h")


async def test_pair_rank_counts_the_series_of_every_shard() -> None:
    fakes = fake_shards()
    fakes["shard-a"].seed(
        pd.DataFrame(
            {"time": [NOW - 60_000], "exchange": "shard-a", "pair": "btcusd", "price": 101.0}
        )
    )
    fakes["shard-c"].seed(
        pd.DataFrame(
            {"time": [NOW - 60_000, NOW], "exchange": "x", "pair": "ethusd", "price": [1.0, 9.0]}
        )
    )
    async with router(fakes) as client:
        body = (await client.get("/btcusd")).json()
    assert body["rank"] == "2/4"  # below ethusd's wider spread, above the single points


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/btc'usd", "pair"),
        ("/btcusd?duration=24h", "duration"),
        ("/btcusd?duration=-400d", "duration"),
        ("/btcusd?exchange=a%27%20OR%20%271%27=%271", "exchange"),
        ("/" + "x" * 100, "pair"),
        ("/btcusd?strict=perhaps", "strict"),
        ("/btcusd?strict=TRUE", "strict"),
        ("/btcusd?exchange=", "exchange"),
        ("/btcusd?duration=-1h&duration=-2h", "duration"),
    ],
    ids=[
        "pair-quote",
        "duration-sign",
        "duration-too-long",
        "exchange-injection",
        "pair-long",
        "strict",
        "strict-upper",
        "exchange-empty",
        "repeated",
    ],
)
async def test_pair_bad_input_is_400_naming_parameter(path: str, parameter: str) -> None:
    async with router(fake_shards()) as client:
        response = await client.get(path)
    assert response.status_code == 400
    assert response.json()["parameter"] == parameter


async def test_pair_unknown_is_404() -> None:
    async with router(fake_shards()) as client:
        response = await client.get("/nopeusd")
    assert response.status_code == 404
    assert response.json()["parameter"] == "pair"


@pytest.mark.parametrize(
    ("down", "slow"), [({"shard-b"}, set()), (set(), {"shard-b"})], ids=["down", "slow"]
)
async def test_pair_with_missing_shard_is_partial_and_names_it(
    down: set[str], slow: set[str]
) -> None:
    async with router(fake_shards(down, slow)) as client:
        body = (await client.get("/btcusd")).json()
    assert (body["partial"], body["missing_shards"]) == (True, ["shard-b"])
    assert [p["exchange"] for p in body["prices"]] == ["shard-a", "shard-c"]


@pytest.mark.parametrize(
    "path", ["/btcusd", "/btcusd?strict=true", "/pairs"], ids=["pair", "strict", "pairs"]
)
async def test_answer_lacking_a_shard_logs_one_warning_naming_it_and_why(
    caplog: pytest.LogCaptureFixture, path: str
) -> None:
    async with router(fake_shards({"shard-b"})) as client:
        await client.get(path)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "shard-b (" in warning
    assert "connection refused" in warning


async def test_pair_strict_with_missing_shard_is_503() -> None:
    async with router(fake_shards({"shard-a"})) as client:
        response = await client.get("/btcusd?strict=true")
    assert response.status_code == 503
    assert response.json()["missing_shards"] == ["shard-a"]


async def test_pair_with_replication_two_and_one_shard_down_is_complete() -> None:
    async with router(fake_shards({"shard-c"}), replication=2) as client:
        body = (await client.get("/btcusd")).json()
    assert body["partial"] is False
    assert body["missing_shards"] == []


async def test_ready_is_503_naming_missing_shard() -> None:
    async with router(fake_shards({"shard-c"})) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["missing_shards"] == ["shard-c"]


async def test_shards_reports_down_shard() -> None:
    async with router(fake_shards({"shard-c"})) as client:
        body = (await client.get("/shards")).json()
    assert [s["up"] for s in body["shards"]] == [True, True, False]


async def test_unknown_route_method_is_json() -> None:
    async with router(fake_shards()) as client:
        response = await client.post("/btcusd")
    assert response.status_code == 405
    assert "error" in response.json()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/btcusd", "GET, HEAD"),
        ("PATCH", "/alerts", "GET, HEAD, POST"),
        ("PUT", "/alerts/0123456789abcdef0123456789abcdef", "GET, HEAD, DELETE"),
        ("DELETE", "/health", "GET, HEAD"),
    ],
    ids=["pair", "alerts", "alert", "health"],
)
async def test_method_not_allowed_is_405_with_allow(method: str, path: str, allow: str) -> None:
    async with router(fake_shards()) as client:
        response = await client.request(method, path)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == set(allow.split(", "))
    assert response.json()["code"] == "http_error"


async def test_openapi_lists_pair_endpoint() -> None:
    async with router(fake_shards()) as client:
        schema = (await client.get("/openapi.json")).json()
    assert "/{pair}" in schema["paths"]
    assert "/shards" in schema["paths"]


async def test_shards_show_the_spool_of_an_ingester_on_this_host(tmp_path: Path) -> None:
    (tmp_path / "shard-b").mkdir()
    (tmp_path / "shard-b" / "status.json").write_text('{"batches": 3, "points": 42}')
    settings = RouterSettings(rank_refresh_s=0, spool_dir=str(tmp_path))
    app = create_app(ShardMap(SHARDS), settings, connect_to(fake_shards()))
    async with served(app) as client:
        shards = (await client.get("/shards")).json()["shards"]
    assert [s["spool"] for s in shards] == [None, {"batches": 3, "points": 42}, None]


async def test_pair_during_the_first_rank_build_waits_for_the_table() -> None:
    fakes = fake_shards()
    for fake in fakes.values():
        fake.slow_kinds["write_stats_query"] = 0.2  # the first table takes a while to build
    app = create_app(ShardMap(SHARDS), RouterSettings(rank_refresh_s=60), connect_to(fakes))
    async with served(app) as client:
        body = (await client.get("/btcusd")).json()
    assert "rank_as_of" in body


async def test_pair_after_a_failed_first_rank_build_ranks_per_request() -> None:
    fakes = fake_shards()
    for fake in fakes.values():
        fake.failing_kinds["write_stats_query"] = RuntimeError("a failure nobody foresaw")
    app = create_app(ShardMap(SHARDS), RouterSettings(rank_refresh_s=60), connect_to(fakes))
    async with served(app) as client:
        body = (await client.get("/btcusd")).json()
    assert body["rank"] == "1/3"
    assert "rank_as_of" not in body


def spread_shards(now: int) -> dict[str, FakeShard]:
    """ethusd on each shard's own exchange, two points a minute apart, spreads 1, 2, 3."""
    return {
        shard.name: FakeShard(shard, now_ms=now).seed(
            pd.DataFrame(
                {
                    "time": [now - 120_000, now - 60_000],
                    "exchange": shard.name,
                    "pair": "ethusd",
                    "price": [100.0, 101.0 + i],
                }
            )
        )
        for i, shard in enumerate(SHARDS)
    }


def backfill_btcusd(fake: FakeShard, now: int) -> None:
    """Points written after the first rank table was built, spread wider than any ethusd."""
    fake.seed(
        pd.DataFrame(
            {"time": [now - 120_000, now - 60_000], "exchange": "kraken", "pair": "btcusd"}
        ).assign(price=[100.0, 110.0])
    )


async def test_pair_missing_from_the_rank_table_is_ranked_after_a_refresh_at_once() -> None:
    now = now_ms()
    fakes = spread_shards(now)
    app = create_app(ShardMap(SHARDS), RouterSettings(rank_refresh_s=60), connect_to(fakes))
    async with served(app) as client:
        before = (await client.get("/ethusd")).json()  # the first table: no btcusd yet
        backfill_btcusd(fakes["shard-a"], now)
        body = (await client.get("/btcusd")).json()
    assert (before["rank"], body["rank"]) == ("1/3", "1/4")
    assert body["rank_as_of"] > before["rank_as_of"]


async def test_pair_missing_from_the_rank_table_shares_one_refresh_between_requests() -> None:
    now = now_ms()
    fakes = spread_shards(now)
    app = create_app(ShardMap(SHARDS), RouterSettings(rank_refresh_s=60), connect_to(fakes))
    async with served(app) as client:
        await client.get("/ethusd")
        backfill_btcusd(fakes["shard-a"], now)
        counted = len([s for s in fakes["shard-b"].statements if s.kind == "write_stats_query"])
        bodies = await asyncio.gather(*(client.get("/btcusd") for _ in range(5)))
    refreshes = [s for s in fakes["shard-b"].statements if s.kind == "write_stats_query"]
    assert {b.json()["rank"] for b in bodies} == {"1/4"}
    assert len(refreshes) - counted == 1


async def test_pair_missing_from_the_rank_table_when_the_refresh_fails_ranks_per_request() -> None:
    now = now_ms()
    fakes = spread_shards(now)
    app = create_app(ShardMap(SHARDS), RouterSettings(rank_refresh_s=60), connect_to(fakes))
    async with served(app) as client:
        await client.get("/ethusd")
        backfill_btcusd(fakes["shard-a"], now)
        for fake in fakes.values():
            fake.failing_kinds["write_stats_query"] = RuntimeError("a failure nobody foresaw")
        body = (await client.get("/btcusd")).json()
    assert body["rank"] == "1/4"
    assert "rank_as_of" not in body


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


async def test_pair_answer_is_the_api_json_of_its_points() -> None:
    """An answer, for a fixed data set with a replica, reads as the answer the API
    defines, every price the same float: the merge and the encoding change nothing.
    (Each price's text is laid out as InfluxDB's JSON writes it, which a real influxd
    checks: tests/integration/test_packed.py.)"""
    a, b = NOW - 120_000, NOW - 60_000
    held = {
        "shard-a": [(a, 62052.70425322867, "binance-us"), (b, 1e16, "binance-us")],
        "shard-b": [(a, 0.1, "kraken"), (b, 1e-05, "kraken")],
    }
    held["shard-c"] = held["shard-b"]  # a replica
    fakes = {s.name: FakeShard(s, now_ms=NOW) for s in SHARDS}
    for name, rows in held.items():
        frame = pd.DataFrame(rows, columns=["time", "price", "exchange"]).assign(pair="btcusd")
        fakes[name].seed(frame)
    async with router(fakes) as client:
        body = (await client.get("/btcusd")).content
    prices = sorted({(t, e): p for rows in held.values() for t, p, e in rows}.items())
    expected = {"pair": "btcusd", "rank": "1/2", "duration": "-24h"} | {
        "prices": [{"price": p, "time": iso(t), "exchange": e} for (t, e), p in prices],
        "partial": False,
        "missing_shards": [],
    }
    assert orjson.loads(body) == expected
