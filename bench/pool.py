"""The shard client under cancellation: httpx, httpx2 and aiohttp on one real influxd.

The router cancels shard calls whenever a shard timeout or an answer's deadline passes.
Per library, one shared client (100 connections) streams btcusd's 24 h of prices
(28,800 points, ``chunked=true``) in storms of 900 requests, 300 at a time, each
cancelled after a random 1-400 ms; after each storm one normal request must come back
whole, and the pool must hold nothing in use. Then 200 requests, 50 at a time, none
cancelled. The figures chose the shard client (docs/architecture.md, decisions).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import aiohttp
import httpx
import httpx2
import orjson

from bench.report import write_section
from federation.core import influxql
from federation.core.shardmap import Shard, ShardMap
from federation.tools.localcluster import LocalCluster, free_port

DB = "pool"
EXCHANGES, MINUTES, LIMIT = 20, 1440, 100


@dataclass
class Client:
    rows: Callable[[], Awaitable[int]]  # one streamed query read whole: its points
    in_use: Callable[[], int]  # connections carrying a request, plus requests queued
    close: Callable[[], Awaitable[None]]


def _count(line: bytes) -> int:
    series = orjson.loads(line)["results"][0].get("series", [])
    return sum(len(s["values"]) for s in series)


def httpx_client(lib: ModuleType, url: str, params: dict[str, str]) -> Client:
    """httpx or httpx2, which share their API."""
    http: Any = lib.AsyncClient(limits=lib.Limits(max_connections=LIMIT))

    async def rows() -> int:
        n = 0
        async with http.stream("GET", url, params=params, timeout=10) as response:
            async for line in response.aiter_lines():
                n += _count(line.encode()) if line.strip() else 0
        return n

    def in_use() -> int:
        pool = http._transport._pool
        busy: int = sum(not c.is_idle() for c in pool.connections) + len(pool._requests)
        return busy

    return Client(rows, in_use, http.aclose)


def aiohttp_client(url: str, params: dict[str, str]) -> Client:
    connector = aiohttp.TCPConnector(limit=LIMIT)
    session = aiohttp.ClientSession(connector=connector)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=10)

    async def rows() -> int:
        n = 0
        async with session.get(url, params=params, timeout=timeout) as response:
            async for line in response.content:
                n += _count(line) if line.strip() else 0
        return n

    return Client(rows, lambda: len(connector._acquired), session.close)


async def storm(client: Client, requests: int = 900, at_once: int = 300) -> int:
    """Requests cancelled at random times; how many were cancelled."""
    gate, cancelled = asyncio.Semaphore(at_once), 0

    async def one() -> None:
        nonlocal cancelled
        async with gate:
            try:
                async with asyncio.timeout(random.uniform(0.001, 0.4)):
                    await client.rows()
            except TimeoutError:
                cancelled += 1

    await asyncio.gather(*(one() for _ in range(requests)))
    return cancelled


async def after_storm(client: Client, expected: int) -> str:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(15):
            got = await client.rows()
    except Exception as exc:
        return f"failed ({type(exc).__name__}) after {time.perf_counter() - started:.1f} s"
    whole = "whole" if got == expected else f"{got:,} of {expected:,} points"
    return f"{whole} in {time.perf_counter() - started:.2f} s"


async def measure(name: str, client: Client) -> list[str]:
    expected = EXCHANGES * MINUTES
    storms = []
    for _ in range(3):
        cancelled = await storm(client)
        await asyncio.sleep(0.5)
        storms.append(f"{cancelled} cancelled; next: {await after_storm(client, expected)}")
    gate = asyncio.Semaphore(50)

    async def bounded() -> int:
        async with gate:
            return await client.rows()

    started = time.perf_counter()
    results = await asyncio.gather(*(bounded() for _ in range(200)), return_exceptions=True)
    rate = 200 / (time.perf_counter() - started)
    whole = sum(r == expected for r in results)
    in_use = client.in_use()
    await client.close()
    return [name, "<br>".join(storms), str(in_use), f"{rate:.1f} ({whole}/200 whole)"]


async def run() -> list[list[str]]:
    port = free_port()
    shard_map = ShardMap((Shard("s", f"http://127.0.0.1:{port}"),))
    with tempfile.TemporaryDirectory() as root, LocalCluster(shard_map, root=root):
        base = f"http://127.0.0.1:{port}"
        now = int(time.time() * 1000)
        body = "\n".join(
            f"price,exchange=ex{e},pair=btcusd price={100 + m / 100} {now - m * 60_000}"
            for e in range(EXCHANGES)
            for m in range(MINUTES)
        ).encode()
        async with httpx2.AsyncClient(timeout=60) as http:
            await http.post(base + "/query", data={"q": influxql.create_database(DB).text})
            await http.post(base + "/write", params={"db": DB, "precision": "ms"}, content=body)
        url = base + "/query"
        # Fixed bounds, so the answer does not shrink as the run goes on.
        ns = 1_000_000
        query = influxql.pair_points_query("btcusd", (now - 86_400_000) * ns, now * ns).text
        params = {"db": DB, "q": query, "epoch": "ms", "chunked": "true", "chunk_size": "2000"}
        rows = []
        makers: list[tuple[str, Callable[[], Client]]] = [
            (f"httpx {httpx.__version__}", lambda: httpx_client(httpx, url, params)),
            (f"httpx2 {httpx2.__version__}", lambda: httpx_client(httpx2, url, params)),
            (f"aiohttp {aiohttp.__version__}", lambda: aiohttp_client(url, params)),
        ]
        for name, make in makers:
            print(f"  {name}", flush=True)
            rows.append(await measure(name, make()))
    return rows


def main(quick: bool = False) -> None:
    rows = asyncio.run(run())
    table = "\n".join(f"| {' | '.join(r)} |" for r in rows)
    write_section(
        "pool",
        f"""## The shard client under cancellation

`python -m bench pool`: one influxd, btcusd's 24 h on {EXCHANGES} exchanges
({EXCHANGES * MINUTES:,} points, streamed). Each storm is 900 requests, 300 at a time,
each cancelled after a random 1-400 ms; *next* is one normal request right after it.
*In use after* counts pool connections still carrying a request plus queued requests
once everything has finished (0 is a pool that lost nothing). Then 200 requests, 50 at
a time, none cancelled.

| client | 3 storms, one after the other | in use after | req/s, 50 at a time |
| --- | --- | ---: | ---: |
{table}
""",
    )
