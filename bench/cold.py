"""Where a cold ``GET /{pair}`` answer's time goes: the router's CPU, and whether it
overlaps the shard's own work.

- *CPU on recorded bodies* (no influxd, no socket): the owning shard's chunked answer
  (``epoch=ms``, 2,000 rows a chunk, InfluxDB's JSON lines) is made once, then served by
  httpx2's mock transport to the real shard client
  (:class:`~federation.core.influx.InfluxClient`); the other shards answer nothing, as
  non-owners do. Each answer runs the real path from the shard client's reading to the
  answer's last byte: parsing, the merge, the JSON of every batch
  (:class:`~federation.router.answer.PairAnswer`). The figure is the least CPU time of
  ``COLD_RUNS`` answers (default 30) in the process's own clock: less noisy than
  end-to-end latency on a shared machine.
- *Overlap on a real influxd* (``COLD_SERIES`` series, default 1,000, on one local
  shard): the same path in this process against the shard's HTTP answer, alternating
  with the shard's raw answer read as bytes by ``http.client``. If the router's work
  overlapped the shard's completely, its wall time would be the shard's; if not at all,
  the shard's plus its CPU.

``python -m bench cold`` prints both; it writes no section of docs/benchmarks.md (the
query section cites it).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator

import httpx2
import orjson

from bench.query import DAY, PAIR, RawClient, cluster_of, load, settle
from federation.core import influxql
from federation.core.influx import InfluxClient
from federation.core.shardmap import Shard, ShardMap
from federation.router.answer import PairAnswer
from federation.router.metrics import RouterMetrics
from federation.router.params import PairQuery
from federation.router.stream import MergedPrices

MINUTE = 60_000


def shard_body(exchanges: int, minutes: int = 1440, chunk_size: int = 2_000) -> bytes:
    """One pair's day as InfluxDB answers ``chunked=true&epoch=ms``: a JSON line a chunk."""
    rng = random.Random(7)
    names = sorted(f"exchange-{i:02d}" for i in range(exchanges))
    start = 1_764_000_000_000 // MINUTE * MINUTE
    rows = [
        [start + m * MINUTE, rng.uniform(60_000, 64_000), name]
        for m in range(minutes)
        for name in names
    ]
    lines = []
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
        lines.append(orjson.dumps({"results": [result]}))
    return b"\n".join(lines) + b"\n"


EMPTY = b'{"results":[{"statement_id":0}]}\n'


class Body(httpx2.AsyncByteStream):
    def __init__(self, body: bytes, piece: int = 65_536) -> None:
        self._body, self._piece = body, piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self._body), self._piece):
            yield self._body[i : i + self._piece]


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


async def answer_cpu(body: bytes, shards: int, runs: int) -> tuple[float, int]:
    """The least CPU seconds of ``runs`` answers, and the answer's bytes."""
    owner = "shard-0"

    def handler(request: httpx2.Request) -> httpx2.Response:
        mine = request.url.host == owner
        return httpx2.Response(200, stream=Body(body if mine else EMPTY))

    shard_map = ShardMap(
        tuple(Shard(f"shard-{i}", f"http://shard-{i}:8086") for i in range(shards))
    )
    best, size = float("inf"), 0
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        clients = {s.name: InfluxClient(s, http, "db") for s in shard_map.shards}
        for _ in range(runs):
            started = time.process_time()
            size = await one_answer(clients, owner)
            best = min(best, time.process_time() - started)
    return best, size


async def overlap(shard_map: ShardMap, runs: int) -> tuple[float, float, float]:
    """p50 of the shard's raw answer, of the router's path on it, and that path's CPU."""
    shard = shard_map.shards[0]
    raw = RawClient(shard.url)
    params = {"db": shard_map.database, "q": influxql.prices_query(PAIR, DAY).text}
    params |= {"epoch": "ms", "chunked": "true", "chunk_size": "2000"}
    direct, routed, cpu = [], [], []
    async with httpx2.AsyncClient(timeout=60) as http:
        clients = {shard.name: InfluxClient(shard, http, shard_map.database, timeout=60)}
        await one_answer(clients, shard.name)
        raw.warm("/query", params)
        for _ in range(runs):
            direct.append(raw.get("/query", params)[0])
            started, used = time.perf_counter(), time.process_time()
            await one_answer(clients, shard.name)
            routed.append(time.perf_counter() - started)
            cpu.append(time.process_time() - used)
    raw.close()
    return statistics.median(direct), statistics.median(routed), statistics.median(cpu)


def main(quick: bool = False) -> None:
    runs = int(os.environ.get("COLD_RUNS") or (5 if quick else 30))
    body = shard_body(20)
    print(f"shard body: {len(body) / 1e6:.2f} MB, 20 exchanges x 1,440 minutes")
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
