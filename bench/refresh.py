"""What the rank refresh costs the shards: influxd CPU per minute, the refresh of this
version against the refresh it replaced, alternating in one run.

Four local shards hold 25 hours of the simulated market (one tick a minute), and three
rank tables (three routers) have made their first table. Then, minute by minute of
simulated time, the ingester's writer writes the minute's ticks, and every router
refreshes as of that minute, one router after the other, each both ways (the order
alternating):

- **now**: ``RankTable.refresh`` (the write counters and the minute rollup the
  ingester wrote after each tick: the newest minute's moments; the minutes of the hour
  the 24 h window reaches at a new hour), plus what writing the rollup cost influxd
  (once a minute, whatever the number of routers);
- **before**: the statements every refresh of the previous version sent (a COUNT per
  hour of the 25 held hours, and the moments of the three window edges: the part of the
  oldest hour in the 24 h window, of the oldest hour in the 1 h window, and the current
  hour so far).

First with 60 s ticks across an hour boundary, then with 1 s ticks (60 a minute) across
the next. influxd CPU is read from ``/proc/<pid>/stat`` (utime + stime) of every shard's
process just before and just after each refresh, so the ingester's writes, which both
sides pay alike, are not in it. The 1-router figure is the first router's refresh, the
3-router figure the three routers' together; per minute, the steady figure is the median
minute, the hour figure the minute that crossed an hour, and "averaged over an hour" is
(59 x steady + hour) / 60.

``BENCH_REFRESH_SERIES`` (default 14,000), ``BENCH_REFRESH_MINUTES`` (default 6) and
``BENCH_REFRESH_HOURS`` (default 25) shrink a run while developing.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from bench.ingest import cluster
from bench.report import write_section
from federation.core import influxql
from federation.core.clock import now_ms
from federation.core.credentials import Credentials
from federation.core.influx import clients_for, ensure_databases
from federation.core.influxql import Statement, TimeRange
from federation.core.logs import setup_logging
from federation.core.types import Series
from federation.router.ranktable import RankTable
from federation.tools.localcluster import LocalCluster
from ingest.rollup import MinuteRollup
from ingest.simulated import SimulatedMarket
from ingest.writer import ShardWriter

MINUTE, HOUR = 60_000, 3_600_000
TICKS = os.sysconf("SC_CLK_TCK")
Gathered = tuple[dict[str, list[list[Series]]], set[str]]


def influxd_cpu_s(local: LocalCluster) -> float:
    """utime + stime of every shard's influxd, from /proc/<pid>/stat, in seconds."""
    total = 0
    for shard in local.shards.values():
        if shard.process is not None:
            fields = Path(f"/proc/{shard.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / TICKS


def previous_refresh(t: int, keep_hours: int = 25) -> list[Statement]:
    """The statements one refresh of the previous version sent to every shard."""
    current = t // HOUR * HOUR
    oldest = current - keep_hours * HOUR
    edges = [
        TimeRange(t - 24 * HOUR, (t - 24 * HOUR) // HOUR * HOUR + HOUR, False, False),
        TimeRange(t - HOUR, current, False, False),
        TimeRange(current, t, True, True),
    ]
    return [influxql.bucket_counts_query(TimeRange(oldest, current), 3600)] + [
        influxql.moments_query(edge) for edge in edges
    ]


@dataclass
class Side:
    label: str
    minutes: list[float] = field(default_factory=list)  # influxd CPU s per simulated minute
    hour: float = 0.0  # the minute that crossed an hour

    @property
    def steady(self) -> float:
        return statistics.median(self.minutes)

    @property
    def averaged(self) -> float:
        return (59 * self.steady + self.hour) / 60


class Run:
    """One cluster, its writer, the simulated market and the sides' rank tables."""

    def __init__(self, local: LocalCluster, http: httpx2.AsyncClient, series: int) -> None:
        self.local = local
        self.clients = clients_for(local.shard_map, http, credentials=Credentials(), timeout=600)
        self.writer = ShardWriter(local.shard_map, self.clients)
        self.market = SimulatedMarket(series=series, seed=1, step_ms=MINUTE)
        database = local.shard_map.database
        self.tables = [RankTable(self.gather, database=database) for _ in range(3)]

    async def gather(self, statement: Statement) -> Gathered:
        names = list(self.clients)
        found = await asyncio.gather(
            *(self.clients[n].query(statement) for n in names), return_exceptions=True
        )
        answers = {
            n: a for n, a in zip(names, found, strict=True) if not isinstance(a, BaseException)
        }
        return answers, set(names) - set(answers)

    async def cpu_of(self, run: Awaitable[object]) -> float:
        before = influxd_cpu_s(self.local)
        await run
        return influxd_cpu_s(self.local) - before

    async def history(self, start: int, end: int, chunk_points: int = 200_000) -> None:
        """The market's minutes from ``start`` to ``end``, written with their minute
        rollup, as by an ingester that had been running all along (the minute the first
        point closes is whole: it holds only that point)."""
        rollup = MinuteRollup(MINUTE, whole_from=start - MINUTE)
        for frame in self.market.history(start, end, MINUTE, chunk_points):
            report = await self.writer.write(frame)
            last = int(frame["time"].max())
            await self.writer.write_lines(rollup.lines(last, frame, report, self.writer))

    async def refresh_before(self, t: int) -> None:
        await asyncio.gather(*(self.gather(s) for s in previous_refresh(t)))

    async def minutes(self, end: int, count: int, tick_s: int, sides: dict[str, Side]) -> None:
        """``count`` simulated minutes after ``end``: the ticks written with the minute
        rollup after each (as the ingester sends it), then every side."""
        rollup = MinuteRollup(tick_s * 1000)
        for k in range(1, count + 1):
            t = end + k * MINUTE
            rolled = 0.0  # influxd CPU of the rollup's writes: a cost of "now" alone
            for i in range(60 // tick_s):
                tick = t - MINUTE + (i + 1) * tick_s * 1000
                frame = self.market.snapshot(tick)
                # As the ingester writes: the tick rows with the prices (their share of
                # the write is not told apart), the minute's rows after them.
                rows = rollup.tick(tick, frame, self.writer)
                report = await self.writer.write(frame, rows)
                lines = rollup.close(tick, report, self.local.shard_map)
                rolled += await self.cpu_of(self.writer.write_lines(lines))
            # Each router's refresh alone, the two sides alternating: the first router's
            # is the 1-router figure, the three together the 3-router one.
            cpu: dict[str, list[float]] = {"now": [], "before": []}
            for r, table in enumerate(self.tables):
                order = ["now", "before"] if (k + r) % 2 else ["before", "now"]
                for label in order:
                    run = table.refresh(t) if label == "now" else self.refresh_before(t)
                    cpu[label].append(await self.cpu_of(run))
            for label, side in sides.items():
                routers = 3 if "3" in label else 1
                now = label.startswith("now")
                value = sum(cpu[label.split(",")[0]][:routers]) + (rolled if now else 0.0)
                if t % HOUR == 0:
                    side.hour = value
                else:
                    side.minutes.append(value)


def sides() -> dict[str, Side]:
    return {
        label: Side(label)
        for label in ("before, 1 router", "now, 1 router", "before, 3 routers", "now, 3 routers")
    }


async def bench_all(
    series: int, hours: int, minutes: int
) -> tuple[list[tuple[str, dict[str, Side]]], float]:
    """60 s ticks across one hour, then 1 s ticks across the next, on one cluster."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp,
        cluster(4, Path(tmp)) as local,
    ):
        async with httpx2.AsyncClient(limits=httpx2.Limits(max_connections=64)) as http:
            run = Run(local, http, series)
            await ensure_databases(run.clients)
            end = (now_ms() // HOUR - 2) * HOUR - (minutes // 2) * MINUTE
            started = time.perf_counter()
            await run.history(end - hours * HOUR, end + MINUTE, 1_000_000)
            print(f"  backfill: {time.perf_counter() - started:.0f}s", flush=True)
            first = statistics.mean([await run.cpu_of(table.refresh(end)) for table in run.tables])
            print(f"  first refresh: {first:.1f}s influxd CPU per router", flush=True)
            results = []
            for tick_s in (60, 1):
                measured = sides()
                await run.minutes(end, minutes, tick_s, measured)
                results.append((f"{tick_s} s", measured))
                for label, side in measured.items():
                    print(f"  {tick_s} s ticks, {label}: {side.averaged:.3f} s/min", flush=True)
                # on to the same minutes of the next hour, one tick a minute, unmeasured
                nxt = end + HOUR
                await run.history(end + (minutes + 1) * MINUTE, nxt + MINUTE)
                for table in run.tables:
                    await table.refresh(nxt)
                end = nxt
            return results, first


def report(
    series: int, hours: int, minutes: int, first: float, rows: list[tuple[str, dict[str, Side]]]
) -> str:
    lines = [
        "## The rank refresh: influxd CPU per minute",
        "",
        "`python -m bench refresh`: "
        f"{series:,} series on 4 local shards, {hours} h held; {minutes} simulated minutes"
        " across an hour boundary with 60 s ticks, then as many across the next with 1 s"
        " ticks; in every minute each side refreshes once, in turn (the order rotating);"
        " influxd CPU (utime + stime of every shard's influxd from /proc) during each"
        " side's refreshes only; 2 cores shared with other work. A router's first"
        f" refresh ({hours} hours read once) cost {first:.1f} s of influxd CPU.",
        "",
        "| ticks | side | influxd CPU per minute, steady | the minute of a new hour |"
        " per minute, averaged over an hour |",
        "| --- | --- | --- | --- | --- |",
    ]
    for ticks, measured in rows:
        for side in measured.values():
            lines.append(
                f"| {ticks} | {side.label} | {side.steady:.3f} s | {side.hour:.3f} s |"
                f" {side.averaged:.3f} s |"
            )
    return "\n".join(lines)


async def bench(quick: bool) -> str:
    series = int(os.environ.get("BENCH_REFRESH_SERIES", 1_000 if quick else 14_000))
    minutes = int(os.environ.get("BENCH_REFRESH_MINUTES", 4 if quick else 6))
    hours = int(os.environ.get("BENCH_REFRESH_HOURS", 25))
    print(f"refresh: {series:,} series, {hours} h, {minutes} minutes", flush=True)
    rows, first = await bench_all(series, hours, minutes)
    return report(series, hours, minutes, first, rows)


def main(quick: bool) -> None:
    setup_logging("warning")
    write_section("refresh", asyncio.run(bench(quick)))
