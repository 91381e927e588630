"""Clients that do not read their answer, in-process: raw ASGI calls whose ``send``
never completes (the socket buffers full) or whose client goes away, against fake
shards that count the streams they have open. An abandoned answer must close its shard
streams at once; the stream limit must refuse (or make room) by its setting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import httpx
import numpy as np
import pandas as pd
from starlette.applications import Starlette
from starlette.types import Message

from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from federation.router.streamslots import StreamSlots
from tests.fakeshard import FakeShard, connect_to
from tests.unit.test_router import NOW, SHARDS

POINTS = 50  # per shard, one a chunk: the streams stay open while the answer is sent


def shards() -> dict[str, FakeShard]:
    fakes = {}
    for shard in SHARDS:
        times = NOW - 60_000 * np.arange(POINTS)
        frame = pd.DataFrame({"time": times, "exchange": shard.name, "pair": "btcusd"})
        fakes[shard.name] = FakeShard(shard, now_ms=NOW).seed(frame.assign(price=100.0))
        fakes[shard.name].chunk_size = 1
    return fakes


@asynccontextmanager
async def router(fakes: dict[str, FakeShard], **settings: float) -> AsyncIterator[Starlette]:
    app = create_app(
        ShardMap(SHARDS), RouterSettings(rank_refresh_s=0, **settings), connect_to(fakes)
    )
    async with app.router.lifespan_context(app):
        yield app


def open_streams(fakes: dict[str, FakeShard]) -> int:
    return sum(fake.open_streams for fake in fakes.values())


class Client:
    """One raw ASGI request for /btcusd (ASGI 2.3, as uvicorn speaks). At its first body
    message, it reads on (``then="read"``), or that ``send`` never completes
    (``"stall"``), or the client goes away (``"leave"``)."""

    def __init__(
        self, fakes: dict[str, FakeShard], then: Literal["read", "stall", "leave"]
    ) -> None:
        self.fakes, self.then = fakes, then
        self.answering = asyncio.Event()
        self.gone = asyncio.Event()
        self.open_when_stalled = -1
        self.bodies = 0

    async def receive(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] != "http.response.body":
            return
        self.bodies += 1
        if self.bodies == 1:
            self.open_when_stalled = open_streams(self.fakes)
            self.answering.set()
            if self.then == "stall":
                await asyncio.Event().wait()
            if self.then == "leave":
                self.gone.set()

    async def call(self, app: Starlette) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/btcusd",
            "raw_path": b"/btcusd",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"router")],
            "client": ("127.0.0.1", 50001),
            "server": ("127.0.0.1", 8001),
        }
        await app(scope, self.receive, self.send)


async def test_send_past_the_deadline_closes_the_answers_shard_streams() -> None:
    fakes = shards()
    client = Client(fakes, "stall")
    async with router(fakes, send_timeout_s=0.2) as app:
        await asyncio.wait_for(client.call(app), 5)
    assert (client.open_when_stalled, open_streams(fakes)) == (len(SHARDS), 0)


async def test_client_gone_mid_answer_closes_the_answers_shard_streams() -> None:
    fakes = shards()
    for fake in fakes.values():
        fake.stall_after_chunks, fake.stall_s = 2, 0.1  # shards that take time, as real ones
    client = Client(fakes, "leave")
    async with router(fakes) as app:
        await asyncio.wait_for(client.call(app), 5)
    assert (client.open_when_stalled, open_streams(fakes)) == (len(SHARDS), 0)
    assert client.bodies < POINTS  # it stopped streaming, not ran to the end


async def test_streams_at_the_limit_with_readers_is_503_naming_the_limit() -> None:
    fakes = shards()
    for fake in fakes.values():
        fake.stall_after_chunks = 2  # the first answer streams on, slowly: its client reads
    reader = Client(fakes, "read")
    async with router(fakes, max_streams=1) as app, served_client(app) as client:
        first = asyncio.create_task(reader.call(app))
        await reader.answering.wait()
        response = await client.get("/btcusd")
        first.cancel()
    body = response.json()
    assert (response.status_code, response.headers["retry-after"]) == (503, "1")
    assert (body["limit"], body["max"]) == ("FEDERATION_MAX_STREAMS", 1)


async def test_streams_at_the_limit_take_the_place_of_a_stalled_client() -> None:
    fakes = shards()
    stalled = Client(fakes, "stall")
    async with router(fakes, max_streams=1) as app, served_client(app) as client:
        app.state.streams = StreamSlots(1, stalled_s=0.05)
        first = asyncio.create_task(stalled.call(app))
        await stalled.answering.wait()
        await asyncio.sleep(0.1)
        response = await client.get("/btcusd")
        await asyncio.wait_for(first, 5)
    body = response.json()
    assert (response.status_code, body["partial"], len(body["prices"])) == (200, False, 150)
    assert open_streams(fakes) == 0


@asynccontextmanager
async def served_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        yield client
