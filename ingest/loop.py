"""The tick loop: a snapshot of every series per tick, written to its owning shards.

Ticks fall on multiples of the interval (wall clock), so two ingesters with the same
interval stamp the same times. A tick never overlaps the next: when one runs longer
than the interval, the ticks it ran into are skipped (and counted), and the loop waits
for the next boundary still ahead. Before ticking, a backfill fills the window the
shards do not hold yet (the simulated source's last 24 h on a fresh cluster).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Protocol

import pandas as pd

from federation.exceptions import ShardError
from federation.influx import InfluxClient
from federation.influxql import MEASUREMENT, quote_ident
from ingest.writer import ShardWriter, WriteReport

log = logging.getLogger(__name__)


class Source(Protocol):
    def snapshot(self, time_ms: int) -> pd.DataFrame: ...


class HistorySource(Source, Protocol):
    def history(self, start_ms: int, end_ms: int, step_ms: int = ...) -> Iterator[pd.DataFrame]: ...


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def ensure_databases(clients: Mapping[str, InfluxClient], timeout_s: float = 60.0) -> None:
    """Create the database on every shard (idempotent), waiting for shards still starting."""

    async def one(client: InfluxClient) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await client.create_database()
                return
            except ShardError as exc:
                if time.monotonic() > deadline:
                    raise
                log.info("waiting for %s: %s", client.name, exc)
                await asyncio.sleep(1.0)

    await asyncio.gather(*(one(c) for c in clients.values()))


async def latest_point_ms(clients: Mapping[str, InfluxClient], window_s: int) -> int | None:
    """The newest point time on any answering shard within the window, or None."""
    query = (
        f"SELECT LAST({quote_ident('price')}) FROM {quote_ident(MEASUREMENT)} "
        f"WHERE time > now() - {window_s}s"
    )
    answers = await asyncio.gather(
        *(c.query(query) for c in clients.values()), return_exceptions=True
    )
    latest: int | None = None
    for answer in answers:
        if isinstance(answer, BaseException):
            continue
        for series in answer[0]:
            for row in series["values"]:
                latest = row[0] if latest is None else max(latest, row[0])
    return latest


class Ingester:
    def __init__(self, source: Source, writer: ShardWriter, interval_s: float = 60.0) -> None:
        if interval_s < 1:
            raise ValueError("interval must be at least 1 second")
        self.source = source
        self.writer = writer
        self.interval_ms = round(interval_s * 1000)
        self.ticks = 0
        self.skipped_ticks = 0
        self.total = WriteReport()

    async def backfill(
        self, source: HistorySource, start_ms: int, end_ms: int, step_ms: int = 60_000
    ) -> WriteReport:
        """Write the source's history for [start, end), with progress in the log."""
        report = WriteReport()
        expected = max(0, (end_ms - start_ms + step_ms - 1) // step_ms)
        done_steps = 0
        started = time.perf_counter()
        for chunk in source.history(start_ms, end_ms, step_ms):
            report.merge(await self.writer.write(chunk))
            done_steps += chunk["time"].nunique()
            rate = report.points / max(time.perf_counter() - started, 1e-9)
            log.info(
                "backfill %3.0f%%: %d of %d minutes, %d points written (%.0f points/s)%s",
                100 * done_steps / max(expected, 1),
                done_steps,
                expected,
                report.points,
                rate,
                f", {sum(report.failed.values())} not stored" if report.failed else "",
            )
        self.total.merge(report)
        return report

    async def tick(self, time_ms: int) -> WriteReport:
        started = time.perf_counter()
        frame = self.source.snapshot(time_ms)
        report = await self.writer.write(frame)
        self.ticks += 1
        self.total.merge(report)
        elapsed = time.perf_counter() - started
        if report.failed:
            log.error(
                "tick %s: %d points stored, %d not stored: %s",
                pd.Timestamp(time_ms, unit="ms"),
                report.points,
                sum(report.failed.values()),
                "; ".join(report.errors.values()),
            )
        else:
            log.info(
                "tick %s: %d points in %.3fs",
                pd.Timestamp(time_ms, unit="ms"),
                report.points,
                elapsed,
            )
        return report

    def next_boundary(self, after_ms: int) -> int:
        return (after_ms // self.interval_ms + 1) * self.interval_ms

    async def run(self, stop: asyncio.Event, max_ticks: int | None = None) -> None:
        """Tick on every interval boundary until ``stop`` is set (or ``max_ticks`` ran)."""
        boundary = self.next_boundary(now_ms())
        while not stop.is_set() and (max_ticks is None or self.ticks < max_ticks):
            delay = (boundary - now_ms()) / 1000
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    break
                except TimeoutError:
                    pass
            await self.tick(boundary)
            following = self.next_boundary(now_ms())
            missed = (following - boundary) // self.interval_ms - 1
            if missed > 0:
                self.skipped_ticks += missed
                log.warning("tick at %d ran past %d boundaries: skipped them", boundary, missed)
            boundary = following
