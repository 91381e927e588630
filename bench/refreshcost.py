"""Where the rank refresh's influxd CPU goes: each statement a refresh sends, alone.

Four local shards hold a few hours of the simulated market (one tick a minute). Then
each statement is sent to every shard ``BENCH_REFRESHCOST_REPEATS`` times, the
statements taking turns, and the influxd CPU (utime + stime of every shard's process,
from ``/proc/<pid>/stat``) it cost is read just before and just after each send:

- the just-closed minute's moments per series (what a refresh reads);
- the count of points newer than that minute (the write account's slack);
- the write counters (``SHOW STATS``);
- the same minute's points, raw (every point with its tags, one series: the router
  makes the moments), alone and with every newer point (the slack folded in);
- moments and raw points over the last hour (60 points a series: what a minute of 1 s
  ticks holds), which tells what influxd pays per point and per series touched;
- one pair's points over the last hour (few series, a point a minute each).

``BENCH_REFRESHCOST_SERIES`` (default 14,000), ``BENCH_REFRESHCOST_HOURS`` (default 3)
and ``BENCH_REFRESHCOST_REPEATS`` (default 7) size a run.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
from pathlib import Path

import httpx2

from bench.ingest import cluster
from bench.refresh import HOUR, MINUTE, Run, influxd_cpu_s
from bench.report import write_section
from federation.core import influxql
from federation.core.clock import now_ms
from federation.core.influx import ensure_databases
from federation.core.influxql import Statement, TimeRange
from federation.core.logs import setup_logging

DAY = 24 * HOUR


def statements(f: int, pair: str) -> dict[str, Statement]:
    """The statements measured, by what they are, for the minute ending at ``f``."""
    minute, hour = TimeRange(f - MINUTE, f, False, True), TimeRange(f - HOUR, f, False, True)
    return {
        "the minute's moments per series (1 point a series)": influxql.moments_query(minute, 60),
        "the count of newer points (slack)": influxql.count_query(
            TimeRange(f, f + DAY, False, True)
        ),
        "the write counters": influxql.write_stats_query(),
        "the minute's points, raw (1 a series)": influxql.points_query(minute),
        "the minute's points and every newer one, raw": influxql.points_query(
            TimeRange(f - MINUTE, f + DAY, False, True)
        ),
        "moments per series of 60 points a series": influxql.moments_query(hour),
        "60 points a series, raw": influxql.points_query(hour),
        "one pair's hour of prices (few series)": influxql.prices_range_query(
            pair, f - HOUR + 1, f + 1
        ),
    }


async def measure(series: int, hours: int, repeats: int) -> dict[str, list[float]]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-refreshcost-") as tmp,
        cluster(4, Path(tmp)) as local,
    ):
        async with httpx2.AsyncClient(limits=httpx2.Limits(max_connections=64)) as http:
            run = Run(local, http, series)
            await ensure_databases(run.clients)
            f = (now_ms() // HOUR - 1) * HOUR + 30 * MINUTE
            for frame in run.market.history(f - hours * HOUR, f + 1, MINUTE, 1_000_000):
                await run.writer.write(frame)
            pair = str(run.market.universe["pair"].iloc[0])
            measured = statements(f, pair)
            cpu: dict[str, list[float]] = {label: [] for label in measured}
            for k in range(repeats):
                labels = list(measured)
                for label in labels[k % len(labels) :] + labels[: k % len(labels)]:
                    before = influxd_cpu_s(local)
                    await run.gather(measured[label])
                    cpu[label].append(influxd_cpu_s(local) - before)
            return cpu


def report(series: int, hours: int, repeats: int, cpu: dict[str, list[float]]) -> str:
    lines = [
        "## Where the refresh's influxd CPU goes",
        "",
        f"`python -m bench refreshcost`: {series:,} series on 4 local shards, {hours} h held"
        f" (one tick a minute); each statement sent to every shard {repeats} times, in"
        " turn; influxd CPU (utime + stime of the 4 processes, from /proc, 10 ms steps)"
        " per send, summed over the shards.",
        "",
        "| statement | influxd CPU per send, median | min | max |",
        "| --- | --- | --- | --- |",
    ]
    for label, values in cpu.items():
        lines.append(
            f"| {label} | {statistics.median(values):.3f} s | {min(values):.3f} s"
            f" | {max(values):.3f} s |"
        )
    return "\n".join(lines)


async def bench(quick: bool) -> str:
    series = int(os.environ.get("BENCH_REFRESHCOST_SERIES", 1_000 if quick else 14_000))
    hours = int(os.environ.get("BENCH_REFRESHCOST_HOURS", 1 if quick else 3))
    repeats = int(os.environ.get("BENCH_REFRESHCOST_REPEATS", 3 if quick else 7))
    print(f"refreshcost: {series:,} series, {hours} h, {repeats} repeats", flush=True)
    cpu = await measure(series, hours, repeats)
    text = report(series, hours, repeats, cpu)
    print(text, flush=True)
    return text


def main(quick: bool) -> None:
    setup_logging("warning")
    write_section("refreshcost", asyncio.run(bench(quick)))
