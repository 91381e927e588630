"""Credentials as InfluxDB 1.x clients send them, checked against the router's keys:
``/write`` always needs a principal, ``/ping`` follows the price API."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from federation.core.apikeys import ApiKeys
from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from tests.asgi import served
from tests.fakeshard import connect_to
from tests.unit.test_router import SHARDS

KEY = "k" * 24
LINE = "price,exchange=kraken,pair=btcusd price=1.5 1"
LOOPBACK, REMOTE = ("127.0.0.1", 50000), ("203.0.113.7", 50000)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@asynccontextmanager
async def router(
    tmp_path: Path, keys: ApiKeys, client: tuple[str, int] = REMOTE
) -> AsyncIterator[httpx.AsyncClient]:
    settings = RouterSettings(rank_refresh_s=0, api=keys, write_spool_dir=str(tmp_path))
    async with served(create_app(ShardMap(SHARDS), settings, connect_to({})), client) as c:
        yield c


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"u": "anyone", "p": KEY}, {}),
        ({}, basic("anyone", KEY)),
        ({}, {"Authorization": f"Token {KEY}"}),
        ({}, {"Authorization": f"Bearer {KEY}"}),
    ],
    ids=["u-p", "basic", "token", "bearer"],
)
async def test_write_accepts_a_key_as_influxdb_clients_send_it(
    tmp_path: Path, params: dict[str, str], headers: dict[str, str]
) -> None:
    async with router(tmp_path, ApiKeys(keys={"writer": KEY})) as client:
        answer = await client.post(
            "/write", params={"db": "crypto", **params}, headers=headers, content=LINE
        )
    assert answer.status_code == 204


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({}, {}),
        ({"u": "writer", "p": "x" * 24}, {}),
        ({}, basic("writer", "")),
        ({}, {"Authorization": "Basic !!!"}),
        ({}, {"Authorization": "Token " + "x" * 24}),
    ],
    ids=["none", "wrong-p", "empty-password", "bad-basic", "wrong-token"],
)
async def test_write_refuses_missing_or_wrong_key_as_influxd(
    tmp_path: Path, params: dict[str, str], headers: dict[str, str]
) -> None:
    async with router(tmp_path, ApiKeys(keys={"writer": KEY})) as client:
        answer = await client.post(
            "/write", params={"db": "crypto", **params}, headers=headers, content=LINE
        )
    assert (answer.status_code, answer.json()) == (401, {"error": "authorization failed"})
    assert answer.headers["X-Influxdb-Version"]


@pytest.mark.parametrize(
    ("client", "status"), [(LOOPBACK, 204), (REMOTE, 403)], ids=["loopback", "remote"]
)
async def test_write_without_keys_only_from_loopback(
    tmp_path: Path, client: tuple[str, int], status: int
) -> None:
    async with router(tmp_path, ApiKeys(), client) as c:
        answer = await c.post("/write", params={"db": "crypto"}, content=LINE)
    assert answer.status_code == status
    assert status == 204 or "FEDERATION_API_KEYS" in answer.json()["error"]


@pytest.mark.parametrize(
    ("prices_need_key", "status"), [(False, 204), (True, 401)], ids=["public", "need-key"]
)
async def test_ping_follows_the_price_api(
    tmp_path: Path, prices_need_key: bool, status: int
) -> None:
    keys = ApiKeys(keys={"reader": KEY}, prices_need_key=prices_need_key)
    async with router(tmp_path, keys) as client:
        assert (await client.get("/ping")).status_code == status
        assert (await client.get("/ping", params={"p": KEY})).status_code == 204
