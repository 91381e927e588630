"""One tick of 14k series into 1, 2 and 4 local shards, beside a direct write to one InfluxDB.

Every configuration runs on its own fresh local cluster (influxd processes on free ports
in a temporary directory) and ticks on the real 1-second schedule of the tick loop
(``Ingester.run``, spool on). Measured in the same run, on the same points:

- ingester: wall time of each tick (snapshot, validation, split by owner, line protocol,
  parallel writes of every shard's batches), p50/p99; the ingester's CPU per point
  (this process only) and influxd's CPU per point (all shard processes);
- baseline: the same frames written straight to one InfluxDB by the simplest client that
  does the job (line protocol of the whole frame, 5,000-line bodies posted one after the
  other), on the same 1-second schedule;
- spooling: 2 shards, one stopped for some ticks: tick time while its batches go to the
  spool on disk, then how fast the spool drains once it is back.

The frames come from the simulated market, made before the clock starts (so neither side
pays for the simulation), and are cycled with each tick's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pandas as pd
import psutil

from bench.report import IMG, write_section
from federation.core.clock import now_ms
from federation.core.credentials import Credentials
from federation.core.influx import clients_for, ensure_databases
from federation.core.lineproto import batches, to_lines
from federation.core.logs import setup_logging
from federation.core.shardmap import Shard, ShardMap
from federation.tools.localcluster import LocalCluster, free_port
from ingest.loop import Ingester
from ingest.simulated import SimulatedMarket
from ingest.source import Snapshot
from ingest.spool import Spool
from ingest.writer import ShardWriter, WriteReport

log = logging.getLogger("bench.ingest")


@dataclass
class Result:
    label: str
    shards: int
    ticks: list[float]  # seconds per tick
    cpu_us_per_point: float  # this process
    influxd_us_per_point: float  # the shard processes
    skipped: int = 0

    @property
    def p50(self) -> float:
        return statistics.median(self.ticks)

    @property
    def p99(self) -> float:
        return pct(self.ticks, 0.99)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Frames:
    """Pre-made frames, cycled, stamped with the tick's time."""

    name = "frames"

    def __init__(self, frames: list[pd.DataFrame]) -> None:
        self.frames, self.i = frames, 0

    def next(self, tick_ms: int) -> pd.DataFrame:
        frame = self.frames[self.i % len(self.frames)]
        self.i += 1
        return frame.assign(time=tick_ms)

    async def snapshot(self, tick_ms: int) -> Snapshot:
        return Snapshot(self.next(tick_ms))

    async def aclose(self) -> None:
        return None


class TimedIngester(Ingester):
    """The ingester, keeping the wall time of every tick."""

    durations: list[float]

    async def tick(self, time_ms: int) -> WriteReport:
        started = time.perf_counter()
        report = await super().tick(time_ms)
        self.durations = getattr(self, "durations", [])
        self.durations.append(time.perf_counter() - started)
        return report


@contextlib.contextmanager
def cluster(shards: int, root: Path) -> Iterator[LocalCluster]:
    shard_map = ShardMap(
        tuple(Shard(f"s{i}", f"http://127.0.0.1:{free_port()}") for i in range(shards)),
        database="bench",
    )
    local = LocalCluster(
        shard_map,
        root=root / f"shards-{shards}-{time.monotonic_ns()}",
        influxd=os.environ.get("INFLUXD"),
    )
    with local:
        yield local


def influxd_cpu(local: LocalCluster) -> float:
    total = 0.0
    for shard in local.shards.values():
        if shard.process is not None:
            times = psutil.Process(shard.process.pid).cpu_times()
            total += times.user + times.system
    return total


async def run_ingester(
    local: LocalCluster, frames: list[pd.DataFrame], ticks: int, spool_dir: Path
) -> Result:
    shard_map = local.shard_map
    async with httpx2.AsyncClient(limits=httpx2.Limits(max_connections=64)) as http:
        clients = clients_for(shard_map, http, credentials=Credentials(), timeout=10)
        await ensure_databases(clients)
        writer = ShardWriter(shard_map, clients, spool=Spool(spool_dir))
        source = Frames(frames)
        ingester = TimedIngester(source, writer, interval_s=1)
        await ingester.run(asyncio.Event(), max_ticks=3)  # warm-up: connections, caches
        ingester.durations = []
        cpu0, db0 = time.process_time(), influxd_cpu(local)
        skipped0 = ingester.skipped_ticks
        await ingester.run(asyncio.Event(), max_ticks=3 + ticks)
        cpu, db = time.process_time() - cpu0, influxd_cpu(local) - db0
        await writer.close()
        points = ticks * len(frames[0]) * shard_map.replication
        return Result(
            f"ingester, {len(clients)} shard{'s' * (len(clients) > 1)}",
            len(clients),
            ingester.durations,
            cpu / points * 1e6,
            db / points * 1e6,
            ingester.skipped_ticks - skipped0,
        )


async def run_baseline(local: LocalCluster, frames: list[pd.DataFrame], ticks: int) -> Result:
    shard = local.shard_map.shards[0]
    url, params = shard.url + "/write", {"db": local.shard_map.database, "precision": "ms"}
    source = Frames(frames)
    durations: list[float] = []
    async with httpx2.AsyncClient() as http:

        async def tick(tick_ms: int) -> None:
            started = time.perf_counter()
            for body in batches(to_lines(source.next(tick_ms)), 5000):
                response = await http.post(url, params=params, content=body, timeout=10)
                response.raise_for_status()
            durations.append(time.perf_counter() - started)

        async def paced(count: int) -> None:
            for _ in range(count):
                boundary = (now_ms() // 1000 + 1) * 1000
                await asyncio.sleep(max(0.0, (boundary - now_ms()) / 1000))
                await tick(boundary)

        await paced(3)
        durations.clear()
        cpu0, db0 = time.process_time(), influxd_cpu(local)
        await paced(ticks)
        cpu, db = time.process_time() - cpu0, influxd_cpu(local) - db0
    points = ticks * len(frames[0])
    return Result(
        "baseline: direct write, 1 InfluxDB", 1, durations, cpu / points * 1e6, db / points * 1e6
    )


@dataclass
class SpoolRun:
    ticks_down: list[float]
    spooled_points: int
    drain_s: float
    drained_points: int


async def run_outage(
    local: LocalCluster, frames: list[pd.DataFrame], ticks: int, spool_dir: Path
) -> SpoolRun:
    shard_map = local.shard_map
    async with httpx2.AsyncClient(limits=httpx2.Limits(max_connections=64)) as http:
        clients = clients_for(shard_map, http, credentials=Credentials(), timeout=10)
        await ensure_databases(clients)
        spool = Spool(spool_dir)
        writer = ShardWriter(shard_map, clients, spool=spool, drain_backoff_max_s=1.0)
        ingester = TimedIngester(Frames(frames), writer, interval_s=1)
        await ingester.run(asyncio.Event(), max_ticks=2)
        down = shard_map.shards[-1].name
        await asyncio.to_thread(local.stop_shard, down)
        ingester.durations = []
        await ingester.run(asyncio.Event(), max_ticks=2 + ticks)
        spooled = spool.queue(down).points
        await writer.close()  # no drainer while the shard starts
        await asyncio.to_thread(local.start_shard, down)
        started = time.perf_counter()
        drainer = ShardWriter(shard_map, clients, spool=Spool(spool_dir))
        ok = await drainer.wait_drained(600)
        drain_s = time.perf_counter() - started
        await drainer.close()
        if not ok:
            raise RuntimeError("the spool did not drain in 600 s")
        return SpoolRun(ingester.durations, spooled, drain_s, spooled)


def plot(results: list[Result]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.boxplot([[t * 1000 for t in r.ticks] for r in results], whis=(1, 99), showfliers=True)
    ax.set_xticks(range(1, len(results) + 1), [r.label.replace(", ", "\n") for r in results])
    ax.set_ylabel("tick time (ms)")
    ax.axhline(1000, color="red", linestyle="--", linewidth=0.8)
    ax.set_title("one tick of every series, 1-second schedule (whiskers p1-p99)")
    fig.tight_layout()
    fig.savefig(IMG / "ingest-ticks.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels = [r.label.replace(", ", "\n") for r in results]
    ax.bar(labels, [r.cpu_us_per_point for r in results], label="ingester process")
    ax.bar(
        labels,
        [r.influxd_us_per_point for r in results],
        bottom=[r.cpu_us_per_point for r in results],
        label="influxd (all shards)",
        alpha=0.6,
    )
    ax.set_ylabel("CPU µs per point")
    ax.legend()
    fig.tight_layout()
    fig.savefig(IMG / "ingest-cpu.png", dpi=110)
    plt.close(fig)
    return ["img/ingest-ticks.png", "img/ingest-cpu.png"]


def report(series: int, ticks: int, results: list[Result], outage: SpoolRun) -> str:
    base = results[0]
    rows = [
        "| run | tick p50 | tick p99 | skipped ticks | ingester CPU/point | x baseline |"
        " influxd CPU/point |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        rows.append(
            f"| {r.label} | {r.p50 * 1000:.0f} ms | {r.p99 * 1000:.0f} ms | {r.skipped} |"
            f" {r.cpu_us_per_point:.2f} µs | {r.cpu_us_per_point / base.cpu_us_per_point:.2f} |"
            f" {r.influxd_us_per_point:.2f} µs |"
        )
    worst = max(r.p99 for r in results[1:])
    ratio = max(r.cpu_us_per_point for r in results[1:]) / base.cpu_us_per_point
    down = outage.ticks_down
    return "\n".join(
        [
            "## Ingest: one tick of every series",
            "",
            f"`python -m bench ingest`: {series:,} series per tick, {ticks} ticks per run on"
            " the 1-second schedule of the tick loop (spool on), each run on a fresh local"
            " cluster; 2 cores. CPU per point is process CPU time over the measured ticks"
            " divided by the points written.",
            "",
            *rows,
            "",
            f"- Goal p99 < 1 s at {series:,} series: worst p99 {worst * 1000:.0f} ms"
            f" ({'met' if worst < 1 else 'NOT met'}).",
            f"- Goal ingester CPU per point within 1.5x of the direct write: worst"
            f" {ratio:.2f}x ({'met' if ratio <= 1.5 else 'NOT met'}).",
            f"- One of 2 shards stopped for {len(down)} ticks: tick p50"
            f" {statistics.median(down) * 1000:.0f} ms, p99 {pct(down, 0.99) * 1000:.0f} ms"
            f" while its batches were spooled ({outage.spooled_points:,} points, fsynced); once"
            f" it was back the spool drained in {outage.drain_s:.1f} s"
            f" ({outage.drained_points / max(outage.drain_s, 1e-9):,.0f} points/s).",
            "",
            "![tick times](img/ingest-ticks.png)",
            "",
            "![CPU per point](img/ingest-cpu.png)",
        ]
    )


async def bench(quick: bool) -> str:
    series = 2_000 if quick else 14_000
    ticks = 10 if quick else 60
    market = SimulatedMarket(series=series, seed=1, step_ms=1000)
    frames = [market.snapshot(i * 1000) for i in range(10)]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp)
        print(f"ingest: {series:,} series, {ticks} ticks per run", flush=True)
        with cluster(1, root) as local:
            results.append(await run_baseline(local, frames, ticks))
        print(f"  {results[-1].label}: p99 {results[-1].p99 * 1000:.0f} ms", flush=True)
        for shards in (1, 2, 4):
            with cluster(shards, root) as local:
                spool_dir = root / f"spool-{shards}"
                results.append(await run_ingester(local, frames, ticks, spool_dir))
            print(f"  {results[-1].label}: p99 {results[-1].p99 * 1000:.0f} ms", flush=True)
        with cluster(2, root) as local:
            outage = await run_outage(local, frames, 5 if quick else 20, root / "spool-outage")
        print(f"  outage: drained {outage.drained_points:,} points in {outage.drain_s:.1f}s")
    plot(results)
    return report(series, ticks, results, outage)


def main(quick: bool) -> None:
    setup_logging("warning")
    write_section("ingest", asyncio.run(bench(quick)))
