"""``GET /btcusd`` (24 h) from the hot cache, beside the raw direct query.

A local cluster of 4 shards holds 24 h of 1-minute points of ``HOT_SERIES`` series
(14,000; ``--quick``: 1,000); the real router (uvicorn, default settings: the cache on)
answers. Measured in one run:

- hot: ``GET /btcusd`` once the pair is held, read whole by Python's ``http.client``
  with keep-alive and ``Accept-Encoding: identity``; and the same with gzip;
- raw direct: the owning shard's own HTTP answer to the pair's 24 h (the catalogue's
  ``prices_query``, ``epoch=ms``), read as bytes by the same client, in three forms
  (whole and ``chunked=true`` in JSON, chunked MessagePack); the fastest is the baseline;
  hot and direct requests alternate, so drift on a shared machine hits both;
- requests/s with 50 concurrent keep-alive clients (asyncio streams, bodies read whole),
  and the router's CPU seconds per request read from /proc meanwhile;
- the cache's bytes (``federation_hot_cache_bytes``) against its bound.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass

import psutil

from bench.query import (
    DAY,
    PAIR,
    RawClient,
    cluster_of,
    load,
    pct,
    settle,
    start_router,
    wait_for_table,
    write_config,
)
from bench.report import command, write_section
from federation.core.influxql import prices_query
from federation.core.shardmap import ShardMap
from federation.router.settings import RouterSettings
from federation.tools.localcluster import free_port

SHARDS, CLIENTS, LOAD_S = 4, 50, 10.0
ENV = ("HOT_SERIES", "HOT_RUNS")  # a smaller run: series, and requests of each kind
CACHE_BYTES = re.compile(r"^federation_hot_cache_bytes (\S+)$", re.MULTILINE)


@dataclass
class Result:
    series: int
    points: int
    answer_bytes: int
    gzip_bytes: int
    hot_p50: float
    hot_p99: float
    hot_gzip_p50: float
    direct_p50: dict[str, float]  # by form
    rps: float
    cpu_ms_per_request: float
    cache_bytes: int
    cache_bound: int
    load_average: float  # the machine's, over the minute of the throughput run

    @property
    def direct_best(self) -> tuple[str, float]:
        return min(self.direct_p50.items(), key=lambda kv: kv[1])


class Client(asyncio.Protocol):
    """One keep-alive client that asks again as soon as an answer has arrived whole; it
    counts the body's bytes and keeps none, so its own CPU stays small beside the
    router's (the load and the router share this machine's cores)."""

    def __init__(self, request: bytes, until: float) -> None:
        self.request, self.until = request, until
        self.done = 0
        self.finished: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._head = b""
        self._left: int | None = None  # body bytes still to come

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self._left is None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            length = re.search(rb"(?i)content-length: *(\d+)", self._head[:end])
            assert length is not None
            self._left = int(length.group(1)) - (len(self._head) - end - 4)
            self._head = b""
        else:
            self._left -= len(data)
        if self._left <= 0:
            self.done += 1
            self._left = None
            if time.perf_counter() < self.until:
                self.transport.write(self.request)
            else:
                self.transport.close()
                self.finished.set_result(self.done)


async def one_client(port: int, request: bytes, until: float) -> int:
    """Keep-alive requests until ``until``, each body arrived whole: how many."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(request, until), "127.0.0.1", port)
    return await client.finished


async def throughput(port: int, router: psutil.Process) -> tuple[float, float]:
    """Requests/s with CLIENTS concurrent clients for LOAD_S, and the router's CPU
    milliseconds per request meanwhile."""
    request = f"GET /{PAIR} HTTP/1.1\r\nHost: router\r\nAccept-Encoding: identity\r\n\r\n"
    cpu_before = sum(router.cpu_times()[:2])
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(one_client(port, request.encode(), started + LOAD_S) for _ in range(CLIENTS))
    )
    elapsed = time.perf_counter() - started
    cpu = sum(router.cpu_times()[:2]) - cpu_before
    return sum(counts) / elapsed, cpu * 1000 / max(1, sum(counts))


def measure(shard_map: ShardMap, series: int, runs: int) -> Result:
    port = free_port()
    config = write_config(shard_map)
    # The first rank table reads 25 hours of moments from every shard at once: at 14,000
    # series on a busy machine that takes past the default shard timeout.
    router = start_router(config, port, shard_timeout_s=300)
    try:
        import httpx2

        async def first() -> dict[str, object]:
            async with httpx2.AsyncClient(timeout=120) as client:
                return await wait_for_table(client, f"http://127.0.0.1:{port}/{PAIR}")

        body = asyncio.run(first())
        owner = shard_map.by_name(shard_map.owners(PAIR)[0])
        query = {"db": shard_map.database, "q": prices_query(PAIR, DAY).text, "epoch": "ms"}
        forms = {
            "whole": (query, "application/json"),
            "chunked": (query | {"chunked": "true"}, "application/json"),
            "msgpack, chunked": (query | {"chunked": "true"}, "application/x-msgpack"),
        }
        routed = RawClient(f"http://127.0.0.1:{port}", timeout=120)
        direct = RawClient(owner.url, timeout=120)
        _, answer = routed.get(f"/{PAIR}")  # held from here on
        _, gzipped = routed.get(f"/{PAIR}", encoding="gzip")
        hot: list[float] = []
        hot_gzip: list[float] = []
        raw: dict[str, list[float]] = {form: [] for form in forms}
        for _ in range(runs):  # alternating
            hot.append(routed.get(f"/{PAIR}")[0])
            for form, (params, accept) in forms.items():
                raw[form].append(direct.get("/query", params, accept=accept)[0])
            hot_gzip.append(routed.get(f"/{PAIR}", encoding="gzip")[0])
        rps, cpu_ms = asyncio.run(throughput(port, psutil.Process(router.pid)))
        load_average = os.getloadavg()[0]
        metrics = RawClient(f"http://127.0.0.1:{port}", timeout=120).get("/metrics")[1].decode()
        found = CACHE_BYTES.search(metrics)
        cache_bytes = int(float(found.group(1))) if found else -1
    finally:
        router.terminate()
        router.wait()
        config.unlink()
    prices = body["prices"]
    assert isinstance(prices, list)
    return Result(
        series,
        len(prices),
        len(answer),
        len(gzipped),
        statistics.median(hot),
        pct(hot, 0.99),
        statistics.median(hot_gzip),
        {form: statistics.median(times) for form, times in raw.items()},
        rps,
        cpu_ms,
        cache_bytes,
        RouterSettings().hot_cache_bytes,
        load_average,
    )


def main(quick: bool = False) -> None:
    series = int(os.environ.get("HOT_SERIES", 1000 if quick else 14000))
    runs = int(os.environ.get("HOT_RUNS", 10 if quick else 40))
    ran = command("hot", quick, ENV)
    with tempfile.TemporaryDirectory() as root, cluster_of(SHARDS, root) as local:
        shard_map = ShardMap(local.shard_map.shards, database=f"s{series}")
        print(f"{series} series on {SHARDS} shards", flush=True)
        asyncio.run(load(shard_map, series))
        settle(local)
        result = measure(shard_map, series, runs)
    print(f"    {result}", flush=True)
    write_section("hot", report(result, ran, runs))


def report(r: Result, command: str, runs: int) -> str:
    form, direct = r.direct_best
    ratio = r.hot_p50 / direct
    others = ", ".join(f"{f} {s * 1000:.1f} ms" for f, s in sorted(r.direct_p50.items()))
    return "\n".join(
        [
            "## The hot cache: `GET /btcusd` (24 h) once held",
            "",
            f"`{command}` ({os.cpu_count()} cores,"
            f" every shard and the router on this one machine): {r.series:,} series, 24 h of"
            f" 1-minute points on {SHARDS} local influxd; btcusd has {r.points:,} points, an"
            f" answer of {r.answer_bytes / 1e6:.2f} MB ({r.gzip_bytes / 1e6:.2f} MB gzipped)."
            f" {runs} requests of each kind, alternating, each read whole by Python's"
            " `http.client` with keep-alive and `Accept-Encoding: identity` (gzip where"
            " said: the gzipped bytes, not inflated). *Raw direct*: the owning shard's own"
            " HTTP answer to the pair's 24 h (the catalogue's `prices_query`, `epoch=ms`),"
            " read as bytes, no parsing; of its three"
            f" forms ({others}) the fastest, *{form}*, is the baseline.",
            "",
            "| series | points | hot p50 | hot p99 | hot p50, gzip | raw direct p50 | hot/direct"
            " | req/s, 50 clients | router CPU per request | cache bytes | bound |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {r.series:,} | {r.points:,} | {r.hot_p50 * 1000:.2f} ms"
            f" | {r.hot_p99 * 1000:.2f} ms | {r.hot_gzip_p50 * 1000:.2f} ms"
            f" | {direct * 1000:.1f} ms | {ratio:.3f} | {r.rps:.0f}"
            f" | {r.cpu_ms_per_request:.2f} ms | {r.cache_bytes / 1e6:.1f} MB"
            f" | {r.cache_bound / 1e6:.0f} MB |",
            "",
            "Goals, measured in this run:",
            "",
            f"- hot p50 at most 0.1x the raw direct query: {ratio:.3f}x"
            f" ({'met' if ratio <= 0.1 else 'not met'}).",
            f"- at least 200 requests/s with {CLIENTS} concurrent clients: {r.rps:.0f}"
            f" ({'met' if r.rps >= 200 else 'not met'}; the clients run on the same"
            f" {os.cpu_count()} cores as the router and the shards, whose load average was"
            f" {r.load_average:.1f} meanwhile; the router's CPU per request is the figure"
            " that carries to a machine of its own).",
            f"- the cache within its bound: {r.cache_bytes / 1e6:.1f} MB of"
            f" {r.cache_bound / 1e6:.0f} MB"
            f" ({'met' if 0 <= r.cache_bytes <= r.cache_bound else 'not met'}).",
            "",
            "gzip is made once per answer (the answer changes once a minute, when the"
            " window moves and the cache is extended) and then served from memory like the"
            " identity bytes; on loopback it costs the client the inflating.",
        ]
    )
