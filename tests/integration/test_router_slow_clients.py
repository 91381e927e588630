"""Clients that send ``GET /btcusd`` and never read, on real influxd through a real
uvicorn server: another client's answer is complete, and once the send deadline has
passed the shard client's pool holds no connection in use."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import httpx2
import numpy as np
import pandas as pd
import pytest
import uvicorn
from starlette.applications import Starlette

from federation.core.influx import pool_status
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from federation.router.streamslots import STALLED_S, StreamSlots
from federation.tools.localcluster import LocalCluster
from ingest.writer import ShardWriter
from tests.integration.conftest import clients_for, shard_map_for

pytestmark = pytest.mark.integration

STALLED = 40  # more than FEDERATION_MAX_STREAMS (30): the limit is hit too
SEND_TIMEOUT_S = 3.0


def raw_points(now_ms: int, minutes: int = 1380) -> pd.DataFrame:
    """btcusd on 64 exchanges over 23 h, one point a minute: an answer of ~8 MB, more
    than a non-reading client's socket buffers and the router's read-ahead of the
    shard's answer take together (loopback's buffers grow to a few MB). The
    oldest point is an hour inside the 24 h window, so a slow machine's minutes do not
    push it out before the normal request."""
    times = now_ms - 30_000 - 60_000 * np.arange(minutes)
    return pd.concat(
        pd.DataFrame({"time": times, "exchange": f"ex{e}", "pair": "btcusd", "price": 100.0 + e})
        for e in range(64)
    )


@asynccontextmanager
async def uvicorn_serving(app: Starlette) -> AsyncIterator[int]:
    listening = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="critical"))
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:  # connections wait in the socket's backlog until the server accepts them
        yield listening.getsockname()[1]
    finally:
        server.should_exit = True
        await serving
        listening.close()


def stalled_client(port: int) -> socket.socket:
    """A connection that asks for /btcusd and never reads (its receive buffer small)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /btcusd HTTP/1.1\r\nHost: router\r\n\r\n")
    return sock


async def every_answer_stalled(app: Starlette) -> None:
    """Until every streaming answer waits on its client for STALLED_S (the buffers full)."""
    streams: StreamSlots = app.state.streams
    for _ in range(600):
        now = time.monotonic()
        if streams.held and all(
            slot.guard is not None and slot.guard.stalled_s(now) >= STALLED_S
            for slot in streams.held
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the answers to clients that never read did not stall")


async def test_clients_that_never_read_leave_answers_complete_and_pool_idle(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    shard_map = shard_map_for(cluster)
    raw = raw_points(int(time.time() * 1000))
    await ShardWriter(shard_map, await clients_for(shard_map, http)).write(raw)
    settings = RouterSettings(send_timeout_s=SEND_TIMEOUT_S, rank_refresh_s=0)
    app = create_app(shard_map, settings)
    async with uvicorn_serving(app) as port, httpx.AsyncClient(timeout=30) as client:
        stalled = [stalled_client(port) for _ in range(STALLED)]
        await every_answer_stalled(app)
        in_use_stalled = pool_status(app.state.shard_http, app.state.shard_streams).in_use
        answer = (await client.get(f"http://127.0.0.1:{port}/btcusd")).json()
        await asyncio.sleep(SEND_TIMEOUT_S + 1)
        pool = pool_status(app.state.shard_http, app.state.shard_streams)
        for sock in stalled:
            sock.close()
    assert in_use_stalled >= len(shard_map.shards)  # the stalled answers held shard streams
    assert (answer["partial"], len(answer["prices"])) == (False, len(raw))
    assert (pool.in_use, pool.waiting) == (0, 0)
