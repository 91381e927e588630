"""Where a cold ``GET /{pair}`` answer's time goes: the router's CPU, and whether it
overlaps the shard's own work.

- *CPU on recorded bodies* (no influxd): the owning shard's chunked answer (``epoch=ms``,
  5,000 rows a chunk in MessagePack, as the router asks) is made once, then
  served over loopback by a server in another process, a chunk per HTTP chunk, to the
  real shard client
  (:class:`~federation.core.influx.InfluxClient`, reading through aiohttp as the
  router's does); the other shards answer nothing, as non-owners do.
  Each answer runs the real path from the shard client's request to the answer's last
  byte: reading, parsing, the merge, the JSON of every batch
  (:class:`~federation.router.answer.PairAnswer`). The figure is the least CPU time of
  ``COLD_RUNS`` answers (default 30) in this process's own clock (the server's is its
  own): less noisy than end-to-end latency on a shared machine.
- *Overlap on a real influxd* (``COLD_SERIES`` series, default 1,000, on one local
  shard): the same path in this process against the shard's HTTP answer, alternating
  with the shard's raw answer in the same form read as bytes by ``http.client``. If
  the router's work overlapped the shard's completely, its wall time would be the
  shard's; if not at all, the shard's plus its CPU.

``python -m bench cold`` prints both; it writes no section of docs/benchmarks.md (the
query section cites it).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator

import aiohttp
import httpx2
import msgpack

from bench.query import DAY, PAIR, RawClient, cluster_of, load, settle
from federation.core import influxql
from federation.core.influx import InfluxClient
from federation.core.shardmap import Shard, ShardMap
from federation.router.answer import PairAnswer
from federation.router.metrics import RouterMetrics
from federation.router.params import PairQuery
from federation.router.stream import CHUNK_SIZE, MergedPrices
from federation.tools.localcluster import free_port

MINUTE = 60_000


def shard_body(exchanges: int, minutes: int = 1440, chunk_size: int = CHUNK_SIZE) -> list[bytes]:
    """One pair's day as InfluxDB answers ``chunked=true&epoch=ms`` in MessagePack: an
    object a chunk."""
    rng = random.Random(7)
    names = sorted(f"exchange-{i:02d}" for i in range(exchanges))
    start = 1_764_000_000_000 // MINUTE * MINUTE
    rows = [
        [start + m * MINUTE, rng.uniform(60_000, 64_000), name]
        for m in range(minutes)
        for name in names
    ]
    chunks = []
    for i in range(0, len(rows), chunk_size):
        last = i + chunk_size >= len(rows)
        series: dict[str, object] = {
            "name": "price",
            "columns": ["time", "price", "exchange"],
            "values": rows[i : i + chunk_size],
        }
        result: dict[str, object] = {"statement_id": 0, "series": [series]}
        if not last:
            series["partial"] = True
            result["partial"] = True
        chunks.append(msgpack.packb({"results": [result]}))
    return chunks


EMPTY = [msgpack.packb({"results": [{"statement_id": 0}]})]


def serve_recorded(body: list[bytes], owner: str, port: int) -> None:
    """Answer every request chunked: ``body`` an object per HTTP chunk for the path of
    ``owner``, an empty result for any other (run in its own process)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            mine = self.path.startswith(f"/{owner}/")
            self.send_response(200)
            self.send_header("Content-Type", "application/x-msgpack")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in body if mine else EMPTY:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


async def one_answer(clients: dict[str, InfluxClient], owner: str) -> int:
    """The answer's bytes, made by the router's own path from the shards' answers."""
    q = PairQuery(pair=PAIR, duration=DAY, exchange=None, strict=False)
    merged = MergedPrices(
        clients, influxql.prices_query(q.pair, q.duration), shard_timeout=60, deadline_s=60
    )
    batches = merged.batches()
    first = await anext(batches, None)
    answer = PairAnswer(q, (1, 10), 0, {}, [owner], merged, first, batches, RouterMetrics())
    return sum([len(part) async for part in answer.body()])


@contextlib.asynccontextmanager
async def shard_clients(shard_map: ShardMap) -> AsyncIterator[dict[str, InfluxClient]]:
    """Clients of the map's shards as the router makes them: httpx2, streams on aiohttp."""
    async with httpx2.AsyncClient(timeout=60) as http, aiohttp.ClientSession() as streams:
        yield {
            s.name: InfluxClient(s, http, shard_map.database, timeout=60, streams=streams)
            for s in shard_map.shards
        }


async def answer_cpu(body: list[bytes], shards: int, runs: int) -> tuple[float, int]:
    """The least CPU seconds of ``runs`` answers, and the answer's bytes."""
    port = free_port()
    server = multiprocessing.Process(
        target=serve_recorded, args=(body, "shard-0", port), daemon=True
    )
    server.start()
    try:
        await wait_listening(port)
        shard_map = ShardMap(
            tuple(Shard(f"shard-{i}", f"http://127.0.0.1:{port}/shard-{i}") for i in range(shards))
        )
        best, size = float("inf"), 0
        async with shard_clients(shard_map) as clients:
            for _ in range(runs):
                started = time.process_time()
                size = await one_answer(clients, "shard-0")
                best = min(best, time.process_time() - started)
    finally:
        server.terminate()
        server.join()
    return best, size


async def wait_listening(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError(f"the recorded shard on port {port} never listened")


async def overlap(shard_map: ShardMap, runs: int) -> tuple[float, float, float]:
    """p50 of the shard's raw answer, of the router's path on it, and that path's CPU."""
    shard = shard_map.shards[0]
    raw = RawClient(shard.url)
    params = {"db": shard_map.database, "q": influxql.prices_query(PAIR, DAY).text}
    params |= {"epoch": "ms", "chunked": "true", "chunk_size": str(CHUNK_SIZE)}
    direct, routed, cpu = [], [], []
    async with shard_clients(ShardMap((shard,), database=shard_map.database)) as clients:
        await one_answer(clients, shard.name)
        raw.get("/query", params, accept="application/x-msgpack")
        for _ in range(runs):
            direct.append(raw.get("/query", params, accept="application/x-msgpack")[0])
            started, used = time.perf_counter(), time.process_time()
            await one_answer(clients, shard.name)
            routed.append(time.perf_counter() - started)
            cpu.append(time.process_time() - used)
    raw.close()
    return statistics.median(direct), statistics.median(routed), statistics.median(cpu)


def main(quick: bool = False) -> None:
    runs = int(os.environ.get("COLD_RUNS") or (5 if quick else 30))
    body = shard_body(20)
    size = sum(map(len, body))
    print(f"shard body: {size / 1e6:.2f} MB of MessagePack, 20 exchanges x 1,440 minutes")
    for shards in (1, 4):
        figures = [asyncio.run(answer_cpu(body, shards, runs)) for _ in range(3)]
        cpu = statistics.median(f[0] for f in figures)
        print(
            f"{shards} shard(s): router CPU per answer {cpu * 1000:.1f} ms"
            f" (median of 3 x least of {runs}; answer {figures[0][1] / 1e6:.2f} MB)"
        )
    series = int(os.environ.get("COLD_SERIES") or (200 if quick else 1000))
    with tempfile.TemporaryDirectory() as root, cluster_of(1, root) as local:
        asyncio.run(load(local.shard_map, series))
        settle(local)
        direct, routed, used = asyncio.run(overlap(local.shard_map, runs))
    print(
        f"{series:,} series on 1 influxd, p50 of {runs}, alternating: shard's raw answer"
        f" {direct * 1000:.0f} ms; the router's path on it {routed * 1000:.0f} ms, of which"
        f" CPU {used * 1000:.0f} ms; not overlapped: {(routed - direct) * 1000:.0f} ms"
        f" ({(routed - direct) / used:.0%} of its CPU)"
    )
