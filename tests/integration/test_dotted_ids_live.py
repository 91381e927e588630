"""Market ids with '.' (DEX pools such as imx.2weth) from a Cryptowatch-format server to
real influxd and back out of the router, kept apart from the ids a '.' would match as a
pattern."""

from __future__ import annotations

import httpx2
import pytest
from pytest_httpserver import HTTPServer

from federation.core.clock import now_ms
from federation.core.timefmt import iso_time
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from federation.tools.localcluster import LocalCluster
from ingest.cryptowatch import CryptowatchSource
from ingest.loop import Ingester
from ingest.writer import ShardWriter
from tests.asgi import served
from tests.integration.conftest import clients_for, shard_map_for
from tests.unit.test_cryptowatch import serve, summary

pytestmark = pytest.mark.integration

PRICES = {
    "market:uniswap-v3:IMX.2WETH": 0.00051,
    "market:uniswap-v3:imxa2weth": 0.9,  # what "imx.2weth" would match as a regex
    "market:uni.v2:imx.2weth": 0.00052,
    "market:kraken:btcusd": 19062.76,
}


async def test_dotted_ids_stored_and_served(
    cluster: LocalCluster, http: httpx2.AsyncClient, httpserver: HTTPServer
) -> None:
    serve(httpserver, "/markets/prices", PRICES)
    serve(httpserver, "/markets/summaries", {"uniswap-v3:imx.2weth": summary(0.00051, 7.0)})
    shard_map = shard_map_for(cluster)
    source = CryptowatchSource(httpserver.url_for("/"), http, timeout_s=5.0)
    ingester = Ingester(source, ShardWriter(shard_map, await clients_for(shard_map, http)))
    tick = now_ms() // 60_000 * 60_000
    assert (await ingester.tick(tick)).points == len(PRICES)
    app = create_app(shard_map, RouterSettings(shard_timeout=5.0, rank_refresh_s=0))
    async with served(app) as client:
        both = (await client.get("/IMX.2WETH")).json()
        one = (await client.get("/imx.2weth", params={"exchange": "uni.v2"})).json()
        pairs = (await client.get("/pairs")).json()["pairs"]
    assert [(p["exchange"], p["price"], p["time"]) for p in both["prices"]] == [
        ("uni.v2", 0.00052, iso_time(tick)),
        ("uniswap-v3", 0.00051, iso_time(tick)),
    ]
    assert [(p["exchange"], p["price"]) for p in one["prices"]] == [("uni.v2", 0.00052)]
    assert {p["pair"]: sorted(p["exchanges"]) for p in pairs}["imx.2weth"] == [
        "uni.v2",
        "uniswap-v3",
    ]
