"""The front door's /query against one unsharded influxd holding the same points.

For each data set (series x 24 h, one point every ``FRONTDOOR_STEP_MIN`` minutes, 10 by
default), three shards (replication 1) behind the real router (on uvicorn) and one
oracle influxd hold the same points. Ten-minute points keep the default run (14,000
series: 2.0 M points, loaded twice) within about ten minutes on a two-core machine;
one-minute points (20 M, loaded twice) took far longer to load than to measure, and
the aggregate's cost per point is what the ratio compares either way.
Measured, alternating router and oracle so drift on a shared machine hits both:

- every series: STDDEV of price over the last 24 h per (exchange, pair), p50 of
  sequential requests;
- one pair: COUNT and SUM of btcusd's price and volume per exchange over 24 h, p50, and
  which shards the router asked for it (from its per-shard metrics): its owners only.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass

import httpx2

from bench.query import cluster_of, settle, start_router, write_config
from bench.report import command, write_section
from federation.core.clock import now_ms
from federation.core.credentials import Credentials
from federation.core.durations import Duration
from federation.core.influx import clients_for, ensure_databases
from federation.core.influxql import pair_stats_query, stddev_query
from federation.core.shardmap import ShardMap
from federation.tools.localcluster import free_port
from ingest.simulated import SimulatedMarket
from ingest.writer import ShardWriter

# The client's queries, from the catalogue (the one place that writes InfluxQL): STDDEV
# of price per series over 24 h, and COUNT and SUM per exchange of one pair.
EVERY = stddev_query(Duration(24, "h")).text


def one_pair() -> str:
    end_ns = time.time_ns()
    return pair_stats_query("btcusd", end_ns - 86_400 * 10**9, end_ns).text


SHARDS = 3
DAY_MS = 86_400_000


def step_minutes() -> int:
    return int(os.environ.get("FRONTDOOR_STEP_MIN", "10"))


async def load(shard_map: ShardMap, series: int, step_ms: int, label: str) -> None:
    """24 h of ``series`` simulated series, one point every ``step_ms``, written to
    their owners as the ingester writes them; progress printed every tenth."""
    async with httpx2.AsyncClient(timeout=120) as http:
        clients = clients_for(shard_map, http, credentials=Credentials(), timeout=120)
        await ensure_databases(clients)
        writer = ShardWriter(shard_map, clients)
        end = now_ms() // step_ms * step_ms
        total = series * len(range(end - DAY_MS, end + 1, step_ms))
        started, written, shown = time.perf_counter(), 0, 0
        market = SimulatedMarket(series, step_ms=step_ms)
        for chunk in market.history(end - DAY_MS, end + 1, step_ms=step_ms):
            written += (await writer.write(chunk)).points
            if written * 10 // total > shown or written == total:
                shown = written * 10 // total
                elapsed = time.perf_counter() - started
                print(
                    f"    {label}: {written:,} of {total:,} points ({100 * written // total}%)"
                    f" in {elapsed:.0f}s",
                    flush=True,
                )


@dataclass
class Result:
    series: int
    every_router_s: float
    every_oracle_s: float
    one_router_s: float
    one_oracle_s: float
    asked: list[str]
    owners: list[str]


async def _p50(
    http: httpx2.AsyncClient, router: str, oracle: str, q: str, runs: int, db: str
) -> tuple[float, float]:
    routed: list[float] = []
    direct: list[float] = []
    for _ in range(runs):
        for url, times in ((router, routed), (oracle, direct)):
            started = time.perf_counter()
            answer = await http.get(f"{url}/query", params={"db": db, "q": q})
            times.append(time.perf_counter() - started)
            result = answer.json()["results"][0]
            if "error" in result:
                raise RuntimeError(f"{url}: {result['error']}")
    return statistics.median(routed), statistics.median(direct)


def _shard_calls(metrics: str) -> dict[str, float]:
    pattern = re.compile(r'federation_shard_query_seconds_count\{shard="([^"]+)"\} ([0-9.e+]+)')
    return {m.group(1): float(m.group(2)) for m in pattern.finditer(metrics)}


async def measure(shard_map: ShardMap, oracle: str, series: int, runs: int) -> Result:
    config = await asyncio.to_thread(write_config, shard_map)
    port = free_port()
    process = await asyncio.to_thread(start_router, config, port)
    router = f"http://127.0.0.1:{port}"
    db = shard_map.database
    try:
        async with httpx2.AsyncClient(timeout=600) as http:
            for _ in range(600):
                try:
                    if (await http.get(f"{router}/ping")).status_code == 204:
                        break
                except httpx2.HTTPError:
                    await asyncio.sleep(0.2)
            every = await _p50(http, router, oracle, EVERY, runs, db)
            before = _shard_calls((await http.get(f"{router}/metrics")).text)
            await http.get(f"{router}/query", params={"db": db, "q": one_pair()})
            after = _shard_calls((await http.get(f"{router}/metrics")).text)
            asked = sorted(s for s in after if after[s] > before.get(s, 0))
            one = await _p50(http, router, oracle, one_pair(), runs, db)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait)
        await asyncio.to_thread(config.unlink)
    owners = sorted(shard_map.owners("btcusd"))
    return Result(series, *every, *one, asked, owners)


def main(quick: bool = False) -> None:
    # The rank table (GET /{pair}'s) is not what is measured: its refreshes would share
    # the shards' cores with the queries.
    os.environ["FEDERATION_RANK_REFRESH"] = "0"
    sizes = [200] if quick else [1000, 14000]
    runs = 5 if quick else 9
    step_ms = step_minutes() * 60_000
    if os.environ.get("FRONTDOOR_SERIES"):  # a run of other sizes: "1000,4000"
        sizes = [int(n) for n in os.environ["FRONTDOOR_SERIES"].split(",")]
        runs = int(os.environ.get("FRONTDOOR_RUNS", runs))
    results = []
    with (
        tempfile.TemporaryDirectory() as root,
        cluster_of(SHARDS, f"{root}/shards") as shards,
        cluster_of(1, f"{root}/oracle") as oracle,
    ):
        for series in sizes:
            shard_map = ShardMap(shards.shard_map.shards, database=f"f{series}")
            one = ShardMap(oracle.shard_map.shards, database=f"f{series}")
            print(f"{series} series: {SHARDS} shards and the oracle", flush=True)
            asyncio.run(load(shard_map, series, step_ms, "shards"))
            asyncio.run(load(one, series, step_ms, "oracle"))
            settle(shards)
            settle(oracle)
            result = asyncio.run(measure(shard_map, one.shards[0].url, series, runs))
            print(f"    {result}", flush=True)
            results.append(result)
    write_section("frontdoor", report(results, quick))


def report(results: list[Result], quick: bool) -> str:
    lines = [
        "## The front door: `/query` against one unsharded influxd",
        "",
        f"`{command('frontdoor', quick, ENV)}` ({os.cpu_count()} cores;"
        f" {SHARDS} shards, replication 1, the router on uvicorn and the oracle influxd all"
        f" on this one machine; 24 h of one point every {step_minutes()} minutes per series;"
        " p50 of sequential"
        " requests, router and oracle alternating; the router's rank table off).",
        "",
        "| series | STDDEV of every series: router | oracle | router/oracle"
        " | one pair: router | oracle | shards asked for one pair | its owners |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.series:,} | {r.every_router_s * 1000:.0f} ms | {r.every_oracle_s * 1000:.0f} ms"
            f" | {r.every_router_s / r.every_oracle_s:.2f} | {r.one_router_s * 1000:.0f} ms"
            f" | {r.one_oracle_s * 1000:.0f} ms | {', '.join(r.asked)} | {', '.join(r.owners)} |"
        )
    return "\n".join(lines) + "\n"


ENV = ("FRONTDOOR_SERIES", "FRONTDOOR_RUNS", "FRONTDOOR_STEP_MIN")
