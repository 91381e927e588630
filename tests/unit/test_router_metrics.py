"""The router's request metrics (ASGI middleware) and its count of partial answers."""

from __future__ import annotations

import pandas as pd
import pytest

from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from tests.asgi import served
from tests.fakeshard import connect_to
from tests.unit.test_router import NOW, SHARDS, fake_shards, router

PAUSE_S = 0.2


async def test_streamed_answer_is_timed_to_its_last_byte() -> None:
    fakes = fake_shards()
    fake = fakes["shard-a"].seed(
        pd.DataFrame({"time": [NOW + 1, NOW + 2], "exchange": "x", "pair": "btcusd", "price": 1.0})
    )
    fake.chunk_size, fake.stall_after_chunks, fake.stall_s = 1, 1, PAUSE_S  # after the head
    app = create_app(
        ShardMap(SHARDS), RouterSettings(shard_timeout=2, rank_refresh_s=0), connect_to(fakes)
    )
    async with served(app) as client:
        prices = (await client.get("/btcusd")).json()["prices"]
        seconds = app.state.federation.metrics.registry.get_sample_value(
            "federation_request_seconds_sum", {"route": "/{pair}"}
        )
    assert len(prices) == 5
    assert seconds >= PAUSE_S


@pytest.mark.parametrize(
    ("path", "route", "status"),
    [
        ("/btcusd", "/{pair}", "200"),
        ("/btcusd?duration=24h", "/{pair}", "400"),
        ("/nopeusd", "/{pair}", "404"),
        ("/alerts/0123456789abcdef0123456789abcdef", "/alerts/{id}", "404"),
        ("/health", "/health", "200"),
        ("/no/such/route", "unmatched", "404"),
        ("/", "/", "200"),
        ("/static/page.js", "/static", "200"),
    ],
    ids=[
        "pair",
        "bad-parameter",
        "unknown-pair",
        "unknown-alert",
        "health",
        "unmatched",
        "page",
        "static",
    ],
)
async def test_requests_are_counted_by_route_template_and_status(
    path: str, route: str, status: str
) -> None:
    async with router(fake_shards()) as client:
        await client.get(path)
        text = (await client.get("/metrics")).text
    assert f'federation_requests_total{{route="{route}",status="{status}"}} 1.0' in text


@pytest.mark.parametrize(
    ("path", "down", "replication", "partial"),
    [
        ("/btcusd", {"shard-b"}, 1, 1),
        ("/pairs", {"shard-b"}, 1, 1),
        ("/btcusd", set(), 1, 0),
        ("/pairs", set(), 1, 0),
        ("/btcusd", {"shard-b"}, 2, 0),
        ("/btcusd?strict=true", {"shard-b"}, 1, 0),
    ],
    ids=["pair-down", "pairs-down", "pair-complete", "pairs-complete", "replicated", "strict"],
)
async def test_answers_sent_partial_are_counted(
    path: str, down: set[str], replication: int, partial: int
) -> None:
    async with router(fake_shards(down), replication) as client:
        await client.get(path)
        text = (await client.get("/metrics")).text
    assert f"federation_partial_answers_total {partial}.0" in text
