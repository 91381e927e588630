"""The tick loop: a snapshot of every series per tick, validated, written to its shards.

The tick rule. Ticks fall on multiples of the interval (wall clock), so two ingesters
with the same interval ask at the same moments. A tick never overlaps the next: when
one runs past the next boundary (a slow source, a slow shard), the boundaries it ran
into are skipped, counted and logged, and the loop waits for the next boundary still
ahead; nothing is ever written twice for being late. The source's fetch is bounded by
one interval, so a hung source costs at most one tick.

The time written is the source's own time where it gives one (ccxt tickers carry the
exchange's timestamp); rows without one get the tick's boundary time. Before ticking,
a backfill fills the window the shards do not hold yet (the simulated source's history).
After each tick's frame is written or spooled, every observer is called with it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Protocol

import pandas as pd

from federation.core.clock import SYSTEM_CLOCK, Clock
from federation.core.periodic import Periodic
from federation.core.timefmt import iso_time
from ingest.errors import SourceError
from ingest.rollup import MinuteRollup
from ingest.source import Snapshot, Source, validate
from ingest.writer import ShardWriter, WriteReport

log = logging.getLogger(__name__)

Observer = Callable[[pd.DataFrame], Awaitable[None]]
MAX_INTERVAL_S = 86_400.0


class HistorySource(Protocol):
    def history(self, start_ms: int, end_ms: int, step_ms: int = ...) -> Iterator[pd.DataFrame]: ...


class _SyncSource(Protocol):
    def snapshot(self, time_ms: int) -> pd.DataFrame: ...


class _Wrapped:
    """A source whose ``snapshot`` returns a frame directly (the simulated market)."""

    def __init__(self, inner: _SyncSource) -> None:
        self.inner = inner
        self.name = type(inner).__name__

    async def snapshot(self, tick_ms: int) -> Snapshot:
        return Snapshot(self.inner.snapshot(tick_ms))

    async def aclose(self) -> None:
        return None


def _describe(problems: Counter[str]) -> str:
    return ", ".join(f"{reason}: {count}" for reason, count in sorted(problems.items()))


class Ingester:
    def __init__(
        self,
        source: Source | _SyncSource | None,
        writer: ShardWriter,
        interval_s: float = 60.0,
        observers: Sequence[Observer] = (),
        *,
        rollup: MinuteRollup | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not 1 <= interval_s <= MAX_INTERVAL_S:
            raise ValueError(f"interval must be between 1 and {MAX_INTERVAL_S:.0f} seconds")
        # None for an ingester that only replays files.
        self.source: Source | None
        if source is None or inspect.iscoroutinefunction(source.snapshot):
            self.source = source  # type: ignore[assignment]
        else:
            self.source = _Wrapped(source)
        self.writer = writer
        self.rollup = rollup  # the minute rollup written after each tick (None: none)
        self.interval_ms = round(interval_s * 1000)
        self.observers = tuple(observers)
        self.clock = clock
        self.ticks = 0
        # The tick rule (in the module's docstring) is the aligned schedule of Periodic.
        self._ticker = Periodic(
            self.tick,
            self.interval_ms / 1000,
            name="tick",
            aligned=True,
            errors="raise",
            clock=clock,
        )
        self.source_errors: Counter[str] = Counter()  # ticks the source gave nothing, by reason
        self.problems: Counter[str] = Counter()  # rows left out, by reason
        self.ignored: Counter[str] = Counter()  # source entries that are not prices, by kind
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
            rate = (report.points + sum(report.spooled.values())) / max(
                time.perf_counter() - started, 1e-9
            )
            log.info(
                "backfill %3.0f%%: %d of %d minutes, %d points written (%.0f points/s)%s%s",
                100 * done_steps / max(expected, 1),
                done_steps,
                expected,
                report.points,
                rate,
                f", {sum(report.spooled.values())} spooled" if report.spooled else "",
                f", {sum(report.failed.values())} not stored" if report.failed else "",
            )
        self.total.merge(report)
        return report

    async def replay(self, frames: AsyncIterator[Snapshot], total_rows: int) -> WriteReport:
        """Write a recorded feed (``ingest.replay``) frame by frame, with progress; each
        frame is validated like a tick's (the recorded times are kept) and observed."""
        report = WriteReport()
        done, last_log, started = 0, 0.0, time.perf_counter()
        async for snapshot in frames:
            problems = snapshot.problems.copy()
            frame = validate(snapshot.rows, None, problems, max_future_ms=None)
            self.problems.update(problems)
            report.merge(await self.writer.write(frame))
            await self._observe(frame)
            done += len(snapshot.rows) + sum(snapshot.problems.values())
            elapsed = time.perf_counter() - started
            if elapsed - last_log >= 2 or done >= total_rows:
                last_log = elapsed
                log.info(
                    "replay %3.0f%%: %d of %d rows, %d points written, %d spooled,"
                    " %d left out (%.0f rows/s)",
                    100 * done / max(total_rows, 1),
                    done,
                    total_rows,
                    report.points,
                    sum(report.spooled.values()),
                    sum(self.problems.values()),
                    done / max(elapsed, 1e-9),
                )
                self._spool_status()
        self.total.merge(report)
        return report

    async def tick(self, time_ms: int) -> WriteReport:
        if self.source is None:
            raise RuntimeError("this ingester has no source to tick from")
        started = time.perf_counter()
        stamp = iso_time(time_ms)
        try:
            async with self.clock.timeout(self.interval_ms / 1000):
                snapshot = await self.source.snapshot(time_ms)
        except SourceError as exc:
            self.ticks += 1
            self.source_errors[exc.reason] += 1
            log.error("tick %s: nothing written: %s", stamp, exc)
            await self._roll(time_ms, WriteReport())
            return WriteReport()
        except TimeoutError:
            self.ticks += 1
            self.source_errors["timeout"] += 1
            log.error("tick %s: the source did not answer within the interval", stamp)
            await self._roll(time_ms, WriteReport())
            return WriteReport()
        problems = snapshot.problems.copy()
        if snapshot.ignored:  # expected in the source's lists: counted, not warned
            self.ignored.update(snapshot.ignored)
            log.debug("tick %s: ignored %s", stamp, _describe(snapshot.ignored))
        frame = validate(snapshot.rows, time_ms, problems)
        rows = self.rollup.tick(time_ms, frame, self.writer) if self.rollup else {}
        report = await self.writer.write(frame, rows)
        await self._roll(time_ms, report)
        self.ticks += 1
        self.total.merge(report)
        self.problems.update(problems)
        await self._observe(frame)
        elapsed = time.perf_counter() - started
        spooled, failed = sum(report.spooled.values()), sum(report.failed.values())
        if problems:
            left_out = problems.total()
            log.warning("tick %s: %d rows left out (%s)", stamp, left_out, _describe(problems))
        if failed:
            log.error(
                "tick %s: %d points stored, %d spooled, %d not stored: %s",
                stamp,
                report.points,
                spooled,
                failed,
                "; ".join(report.errors.values()),
            )
        else:
            log.info(
                "tick %s: %d points in %.3fs%s",
                stamp,
                report.points + spooled,
                elapsed,
                f" ({spooled} spooled)" if spooled else "",
            )
        self._spool_status()
        return report

    async def _roll(self, time_ms: int, report: WriteReport) -> None:
        """Send the rows of the minutes this tick ended, after its prices (the same
        queues: a shard that is down gets them after the prices they describe)."""
        if self.rollup is None:
            return
        parts = self.rollup.close(time_ms, report, self.writer.shard_map)
        if parts:
            rolled = await self.writer.write_lines(parts)
            if rolled.failed:
                failed = ", ".join(sorted(rolled.failed))
                log.warning(
                    "tick %s: the minute rollup was not stored on %s", iso_time(time_ms), failed
                )

    def _spool_status(self) -> None:
        spool = self.writer.spool
        if spool is None:
            return
        summary = spool.summary()
        if summary:
            log.warning("%s", summary)
        spool.write_status()

    async def _observe(self, frame: pd.DataFrame) -> None:
        if not self.observers or frame.empty:
            return
        results = await asyncio.gather(
            *(observer(frame) for observer in self.observers), return_exceptions=True
        )
        for observer, result in zip(self.observers, results, strict=True):
            if isinstance(result, Exception):
                log.error("observer %r failed on a tick: %r", observer, result, exc_info=result)

    @property
    def skipped_ticks(self) -> int:
        """Boundaries skipped because a tick ran past them."""
        return self._ticker.skipped

    def next_boundary(self, after_ms: int) -> int:
        return self._ticker.next_boundary(after_ms)

    async def run(self, stop: asyncio.Event, max_ticks: int | None = None) -> None:
        """Tick on every interval boundary until ``stop`` is set (or ``max_ticks`` ran)."""
        self.writer.resume()
        await self._ticker.run(stop, None if max_ticks is None else max(0, max_ticks - self.ticks))
