"""The router in-process, over fake shards: for faults a real server cannot be made to
show on demand (a shard down, a shard too slow). Real answers are tested on real influxd
in tests/integration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from federation.core.shardmap import Shard, ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from tests.asgi import served

SHARDS = tuple(Shard(f"shard-{c}", f"http://shard-{c}:8086") for c in "abc")
NOW = 1_700_000_000_000


def influx_answer(request: httpx.Request) -> httpx.Response:
    """A healthy shard holding btcusd on its own exchange."""
    if request.url.path == "/ping":
        return httpx.Response(204, headers={"X-Influxdb-Version": "1.6.7"})
    statements = request.url.params.get("q", "").split(";")
    results = [
        {"statement_id": i, "series": answer(q, request.url.host)} for i, q in enumerate(statements)
    ]
    return httpx.Response(200, json={"results": results})


def answer(q: str, exchange: str) -> list[dict[str, object]]:
    if "STDDEV" in q and "COUNT" not in q:  # the rank per request (moments: none here)
        series = [
            {
                "name": "price",
                "tags": {"exchange": exchange, "pair": "btcusd"},
                "columns": ["time", "stddev"],
                "values": [[0, 1.0]],
            }
        ]
    elif q.startswith('SELECT "price"') and "'btcusd'" in q:
        series = [
            {
                "name": "price",
                "columns": ["time", "price", "exchange"],
                "values": [[NOW, 100.0, exchange]],
            }
        ]
    else:
        series = []
    return series


def faulty(down: set[str], slow: set[str] = frozenset()) -> httpx.AsyncBaseTransport:  # type: ignore[assignment]
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host in down:
            raise httpx.ConnectError("connection refused")
        if request.url.host in slow:
            await asyncio.sleep(5)
        return influx_answer(request)

    return httpx.MockTransport(handler)


@asynccontextmanager
async def router(
    transport: httpx.AsyncBaseTransport, replication: int = 1
) -> AsyncIterator[httpx.AsyncClient]:
    settings = RouterSettings(shard_timeout=0.3, rank_refresh_s=0)  # rank per request
    app = create_app(ShardMap(SHARDS, replication=replication), settings, transport)
    async with served(app) as client:
        yield client


async def test_pair_merges_every_shard() -> None:
    async with router(faulty(set())) as client:
        body = (await client.get("/btcusd")).json()
    assert [p["exchange"] for p in body["prices"]] == ["shard-a", "shard-b", "shard-c"]
    assert (body["rank"], body["partial"], body["duration"]) == ("1/3", False, "-24h")


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/btc'usd", "pair"),
        ("/btcusd?duration=24h", "duration"),
        ("/btcusd?duration=-400d", "duration"),
        ("/btcusd?exchange=a%27%20OR%20%271%27=%271", "exchange"),
        ("/" + "x" * 100, "pair"),
        ("/btcusd?strict=perhaps", "strict"),
    ],
    ids=[
        "pair-quote",
        "duration-sign",
        "duration-too-long",
        "exchange-injection",
        "pair-long",
        "strict",
    ],
)
async def test_pair_bad_input_is_400_naming_parameter(path: str, parameter: str) -> None:
    async with router(faulty(set())) as client:
        response = await client.get(path)
    assert response.status_code == 400
    assert response.json()["parameter"] == parameter


async def test_pair_unknown_is_404() -> None:
    async with router(faulty(set())) as client:
        response = await client.get("/nopeusd")
    assert response.status_code == 404
    assert response.json()["parameter"] == "pair"


@pytest.mark.parametrize(
    ("down", "slow"), [({"shard-b"}, set()), (set(), {"shard-b"})], ids=["down", "slow"]
)
async def test_pair_with_missing_shard_is_partial_and_names_it(
    down: set[str], slow: set[str]
) -> None:
    async with router(faulty(down, slow)) as client:
        body = (await client.get("/btcusd")).json()
    assert (body["partial"], body["missing_shards"]) == (True, ["shard-b"])
    assert [p["exchange"] for p in body["prices"]] == ["shard-a", "shard-c"]


async def test_pair_strict_with_missing_shard_is_503() -> None:
    async with router(faulty({"shard-a"})) as client:
        response = await client.get("/btcusd?strict=true")
    assert response.status_code == 503
    assert response.json()["missing_shards"] == ["shard-a"]


async def test_pair_with_replication_two_and_one_shard_down_is_complete() -> None:
    async with router(faulty({"shard-c"}), replication=2) as client:
        body = (await client.get("/btcusd")).json()
    assert body["partial"] is False
    assert body["missing_shards"] == []


async def test_ready_is_503_naming_missing_shard() -> None:
    async with router(faulty({"shard-c"})) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["missing_shards"] == ["shard-c"]


async def test_shards_reports_down_shard() -> None:
    async with router(faulty({"shard-c"})) as client:
        body = (await client.get("/shards")).json()
    assert [s["up"] for s in body["shards"]] == [True, True, False]


async def test_unknown_route_method_is_json() -> None:
    async with router(faulty(set())) as client:
        response = await client.post("/btcusd")
    assert response.status_code == 405
    assert "error" in response.json()


async def test_openapi_lists_pair_endpoint() -> None:
    async with router(faulty(set())) as client:
        schema = (await client.get("/openapi.json")).json()
    assert "/{pair}" in schema["paths"]
    assert "/shards" in schema["paths"]


async def test_metrics_count_requests() -> None:
    async with router(faulty(set())) as client:
        await client.get("/btcusd")
        text = (await client.get("/metrics")).text
    assert 'federation_requests_total{route="pair",status="200"} 1.0' in text


async def test_shards_show_the_spool_of_an_ingester_on_this_host(tmp_path: Path) -> None:
    (tmp_path / "shard-b").mkdir()
    (tmp_path / "shard-b" / "status.json").write_text('{"batches": 3, "points": 42}')
    settings = RouterSettings(rank_refresh_s=0, spool_dir=str(tmp_path))
    app = create_app(ShardMap(SHARDS), settings, faulty(set()))
    async with served(app) as client:
        shards = (await client.get("/shards")).json()["shards"]
    assert [s["spool"] for s in shards] == [None, {"batches": 3, "points": 42}, None]


async def test_pair_during_the_first_rank_build_waits_for_the_table() -> None:
    async def slow_refresh(request: httpx.Request) -> httpx.Response:
        if "COUNT" in request.url.params.get("q", ""):
            await asyncio.sleep(0.2)  # the first table takes a while to build
        return influx_answer(request)

    app = create_app(
        ShardMap(SHARDS), RouterSettings(rank_refresh_s=60), httpx.MockTransport(slow_refresh)
    )
    async with served(app) as client:
        body = (await client.get("/btcusd")).json()
    assert "rank_as_of" in body


async def test_pair_after_a_failed_first_rank_build_ranks_per_request() -> None:
    async def broken_refresh(request: httpx.Request) -> httpx.Response:
        if "COUNT" in request.url.params.get("q", ""):
            raise RuntimeError("a refresh that fails for a reason nobody foresaw")
        return influx_answer(request)

    app = create_app(
        ShardMap(SHARDS), RouterSettings(rank_refresh_s=60), httpx.MockTransport(broken_refresh)
    )
    async with served(app) as client:
        body = (await client.get("/btcusd")).json()
    assert body["rank"] == "1/3"
    assert "rank_as_of" not in body
