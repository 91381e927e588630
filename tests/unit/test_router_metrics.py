"""The router's request metrics (ASGI middleware) and its count of partial answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import Settings
from tests.asgi import served
from tests.unit.test_router import NOW, SHARDS, faulty, influx_answer, router
from tests.unit.test_stream import chunk

PAUSE_S = 0.2


def mid_stream(between: Callable[[], Awaitable[None]]) -> httpx.MockTransport:
    """Shards whose streamed prices send a chunk at once, await ``between``, then the last."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("chunked") != "true":
            return influx_answer(request)
        exchange = request.url.host

        async def body() -> AsyncIterator[bytes]:
            yield chunk([(NOW, 1.0, exchange), (NOW + 1000, 2.0, exchange)])
            await between()
            yield chunk([(NOW + 2000, 3.0, exchange)])

        return httpx.Response(200, content=body())

    return httpx.MockTransport(handler)


async def test_streamed_answer_is_timed_to_its_last_byte() -> None:
    settings = Settings(shard_timeout=2, rank_refresh_s=0)
    transport = mid_stream(lambda: asyncio.sleep(PAUSE_S))  # after the head has been sent
    app = create_app(ShardMap(SHARDS[:1]), settings, transport)
    async with served(app) as client:
        prices = (await client.get("/btcusd")).json()["prices"]
        seconds = app.state.federation.metrics.registry.get_sample_value(
            "federation_request_seconds_sum", {"route": "/{pair}"}
        )
    assert len(prices) == 3
    assert seconds >= PAUSE_S


@pytest.mark.parametrize(
    ("path", "route", "status"),
    [
        ("/btcusd", "/{pair}", "200"),
        ("/btcusd?duration=24h", "/{pair}", "400"),
        ("/nopeusd", "/{pair}", "404"),
        ("/alerts/nope", "/alerts/{id}", "404"),
        ("/health", "/health", "200"),
        ("/no/such/route", "unmatched", "404"),
    ],
    ids=["pair", "bad-parameter", "unknown-pair", "unknown-alert", "health", "unmatched"],
)
async def test_requests_are_counted_by_route_template_and_status(
    path: str, route: str, status: str
) -> None:
    async with router(faulty(set())) as client:
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
    async with router(faulty(down), replication) as client:
        await client.get(path)
        text = (await client.get("/metrics")).text
    assert f"federation_partial_answers_total {partial}.0" in text
