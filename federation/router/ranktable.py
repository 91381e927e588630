"""The precomputed rank: per-series moments of every closed hour, kept in memory, and
rank tables for the default windows rebuilt from them at every refresh (every ingest
tick by default).

A window (t - W, t] splits into the closed hours inside it, read from memory, and at
most two edges (the part of the oldest hour after t - W, and the current hour up to t),
asked of the shards. So a refresh reads the moments of at most two hours of points per
shard whatever the window, instead of the whole window on every request. A closed hour
is read once when it closes, and again only when the shards' point count of that hour
has moved (one cheap COUNT per refresh tells): late points (a spool replaying, a
backfill still running when the router started) are in the next table.

Other windows up to ``keep_hours`` are built from the same hours on demand; longer ones
fall back to one ``STDDEV`` query per shard. Either is cached until the next refresh,
and concurrent requests for the same window share one computation. Every table says
as of when it holds (``as_of``) and which shards it lacks.

A request whose pair has prices in the window but no row in the table (its points were
written after the table was built: a backfill, a spool replaying) asks for a refresh
at once (:meth:`RankTable.refreshed_since`); one runs at a time, shared by every
request waiting for it.

On-demand work is bounded, since any client can ask for any window: a window is rounded
to the minute (to the hour beyond ``keep_hours``), so ``-3601s`` and ``-60m`` share one
table and at most a few thousand windows exist; at most ``max_windows`` of their tables
are kept (the least recently used is dropped); at most ``max_builds`` are built at once,
and a request for yet another window is refused with 503 and ``Retry-After``
(:class:`~federation.core.errors.Busy`) rather than queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pandas as pd

from federation.core import influxql
from federation.core.clock import SYSTEM_CLOCK, Clock
from federation.core.durations import Duration
from federation.core.errors import Busy
from federation.core.influxql import Statement, TimeRange
from federation.core.periodic import Periodic
from federation.core.timefmt import iso_time
from federation.core.types import Series
from federation.router import moments
from federation.router.rank import sort_table, table_from_series

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
DEFAULT_WINDOWS = (Duration(1, "h"), Duration(24, "h"))

# (answers per answering shard, names of missing shards)
Gather = Callable[[Statement], Awaitable[tuple[list[list[list[Series]]], set[str]]]]


@dataclass
class RankSnapshot:
    table: pd.DataFrame  # exchange, pair, stddev; sorted as the rank wants
    as_of: int  # epoch ms: the window is (as_of - duration, as_of]
    missing: set[str] = field(default_factory=set)


@dataclass
class _Hour:
    moments: pd.DataFrame
    missing: set[str]
    count: int  # points on all shards when the moments were read


def _cond(start: int, end: int, start_inclusive: bool, end_inclusive: bool) -> TimeRange:
    return TimeRange(start, end, start_inclusive, end_inclusive)


class RankTable:
    def __init__(
        self,
        gather: Gather,
        *,
        windows: tuple[Duration, ...] = DEFAULT_WINDOWS,
        keep_hours: int = 25,
        refresh_s: float = 60.0,
        delay_s: float = 2.0,
        max_windows: int = 64,
        max_builds: int = 4,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._gather = gather
        self.windows = windows
        self.keep_hours = keep_hours
        self.refresh_s = refresh_s
        self.delay_s = delay_s  # after a tick boundary, so the tick's points are stored
        self._hours: dict[int, _Hour] = {}
        self.as_of: int | None = None
        self._lock = asyncio.Lock()  # one refresh at a time: the loop's or a request's
        self._asked: asyncio.Task[None] | None = None  # the refresh requests wait on
        self._asked_at = 0  # epoch ms when it was asked for
        self._cache: dict[int, asyncio.Future[RankSnapshot]] = {}  # the default windows
        # Other windows, least recently used first; a build in progress is an unfinished
        # future, shared by every request for its window.
        self._on_demand_cache: OrderedDict[int, asyncio.Future[RankSnapshot]] = OrderedDict()
        self._builds: set[asyncio.Future[RankSnapshot]] = set()  # on-demand, under way
        self.max_windows = max_windows
        self.max_builds = max_builds
        self.ready = asyncio.Event()  # set once the first refresh is done
        self.tried = asyncio.Event()  # set once the first refresh ended, done or failed
        self.clock = clock
        # Told, after each count check, the closed hours about to be read (again): their
        # counts moved, or they are new; and whether every shard answered the count.
        self.on_hours_checked: Callable[[list[int], bool], None] | None = None
        # A failed refresh is logged and the last table stays in use.
        self._refresher = Periodic(
            self._refresh_once,
            refresh_s,
            name="rank refresh",
            aligned=True,
            offset_s=delay_s,
            immediate=True,
            clock=clock,
        )

    async def _moments(
        self, condition: TimeRange, by_hour: bool = False
    ) -> tuple[pd.DataFrame, set[str]]:
        answers, missing = await self._gather(influxql.moments_query(condition, by_hour))
        return moments.from_series(a[0] for a in answers), missing

    async def refresh(self, now_ms: int | None = None) -> None:
        """Bring the hours up to date and rebuild the default windows as of ``now_ms``
        (the time the refresh starts when None)."""
        async with self._lock:
            await self._refresh(now_ms)

    async def refreshed_since(self, t_ms: int) -> None:
        """Return once the table is as of ``t_ms`` or later: at once when it is, else
        after a refresh asked for at ``t_ms`` or later. Every request waiting shares
        the one refresh in flight; the caller bounds the wait."""
        if self.as_of is not None and self.as_of >= t_ms:
            return
        if self._asked is None or self._asked.done() or self._asked_at < t_ms:
            self._asked_at = self.clock.now_ms()
            self._asked = asyncio.ensure_future(self.refresh())
            # Retrieved here too, so a refresh every waiter gave up on logs no stray error.
            self._asked.add_done_callback(lambda task: task.cancelled() or task.exception())
        await asyncio.shield(self._asked)

    async def _refresh(self, now_ms: int | None) -> None:
        started = time.perf_counter()
        t = int(now_ms if now_ms is not None else self.clock.now_ms())
        current = t // HOUR_MS * HOUR_MS
        oldest = current - self.keep_hours * HOUR_MS
        for hour in [h for h in self._hours if h < oldest]:
            del self._hours[hour]
        counts, counts_missing = await self._hour_counts(oldest, current)
        stale = [
            h
            for h in range(oldest, current, HOUR_MS)
            if h not in self._hours
            or self._hours[h].missing
            or (not counts_missing and self._hours[h].count != counts.get(h, 0))
        ]
        if self.on_hours_checked is not None:
            self.on_hours_checked(stale, not counts_missing)
        await self._load_hours(stale, current, counts)
        edges: dict[TimeRange, asyncio.Task[tuple[pd.DataFrame, set[str]]]] = {}
        snapshots = {w.seconds: await self._build(w.seconds * 1000, t, edges) for w in self.windows}
        self._cache = {}
        self._on_demand_cache = OrderedDict()
        for seconds, snapshot in snapshots.items():
            self._cache[seconds] = asyncio.get_running_loop().create_future()
            self._cache[seconds].set_result(snapshot)
        self.as_of = t
        self.ready.set()
        lacking = sorted(set().union(*(s.missing for s in snapshots.values())))
        if lacking:  # once per refresh; each shard's failure is logged at DEBUG
            log.warning("rank table as of %s lacks shards %s", iso_time(t), ", ".join(lacking))
        log.info(
            "rank refreshed as of %s in %.2fs (%d hours held)",
            iso_time(t),
            time.perf_counter() - started,
            len(self._hours),
        )

    async def _hour_counts(self, start: int, end: int) -> tuple[dict[int, int], set[str]]:
        """Points per hour on all shards together: an hour whose count moved since its
        moments were read got late points (a spool replaying, a backfill) and is read again.
        A COUNT is cheap: 0.4 s for 2.9M points here, where their STDDEV took 5.6 s."""
        answers, missing = await self._gather(
            influxql.hour_counts_query(_cond(start, end, True, False))
        )
        counts: dict[int, int] = {}
        for answer in answers:
            for series in answer[0]:
                for hour, count in series["values"]:
                    counts[hour] = counts.get(hour, 0) + count
        return counts, missing

    async def _load_hours(
        self, hours: list[int], current: int, counts: dict[int, int] | None = None
    ) -> None:
        """Ask for the moments of these closed hours, in runs of consecutive hours."""
        runs: list[list[int]] = []
        for hour in hours:
            if runs and runs[-1][-1] + HOUR_MS == hour:
                runs[-1].append(hour)
            else:
                runs.append([hour])
        for run in runs:
            end = min(run[-1] + HOUR_MS, current)
            frame, missing = await self._moments(_cond(run[0], end, True, False), by_hour=True)
            by_bucket = dict(tuple(frame.groupby("bucket"))) if not frame.empty else {}
            for hour in run:
                part = by_bucket.get(hour, frame.iloc[0:0])
                count = -1 if counts is None else counts.get(hour, 0)  # -1: check next time
                self._hours[hour] = _Hour(part, missing, count)

    async def _build(
        self,
        window_ms: int,
        t: int,
        edges: dict[TimeRange, asyncio.Task[tuple[pd.DataFrame, set[str]]]],
    ) -> RankSnapshot:
        """The rank table of (t - window, t] from held hours and fresh edges."""
        start = t - window_ms
        current = t // HOUR_MS * HOUR_MS
        if start >= current:
            conditions = [_cond(start, t, False, True)]
            full: list[int] = []
        else:
            first = (start // HOUR_MS + 1) * HOUR_MS
            full = list(range(first, current, HOUR_MS))
            conditions = [
                _cond(start, min(first, current), False, False),
                _cond(current, t, True, True),
            ]
        parts, missing = [], set()
        for hour in full:
            held = self._hours.get(hour)
            if held is None:
                await self._load_hours([hour], current)
                held = self._hours[hour]
            parts.append(held.moments)
            missing |= held.missing
        for condition in conditions:
            if condition not in edges:
                edges[condition] = asyncio.ensure_future(self._moments(condition))
            frame, edge_missing = await edges[condition]
            parts.append(frame)
            missing |= edge_missing
        table = sort_table(moments.stddev(moments.combine(parts)))
        return RankSnapshot(table, t, missing)

    def rounded(self, duration: Duration) -> int:
        """The seconds of the window whose table serves ``duration``: to the minute, to
        the hour beyond ``keep_hours``, at least one step."""
        step = 60 if duration.seconds <= self.keep_hours * 3600 else 3600
        return max(step, (duration.seconds + step // 2) // step * step)

    async def snapshot(self, duration: Duration) -> RankSnapshot | None:
        """The table of ``duration`` as of the last refresh; None before the first one."""
        if self.as_of is None:
            return None
        seconds = self.rounded(duration)
        cached = self._cache.get(duration.seconds) or self._cache.get(seconds)
        if cached is not None:
            return await asyncio.shield(cached)
        cached = self._on_demand_cache.get(seconds)
        if cached is not None:
            self._on_demand_cache.move_to_end(seconds)
        else:
            if len(self._builds) >= self.max_builds:
                raise Busy(
                    f"{self.max_builds} rank tables of other windows are being built; ask again"
                    " in a moment, or for -1h or -24h",
                    limit="FEDERATION_RANK_BUILDS",
                    maximum=self.max_builds,
                    retry_after_s=1,
                )
            cached = asyncio.ensure_future(self._on_demand(seconds, self.as_of))
            self._builds.add(cached)
            cached.add_done_callback(self._builds.discard)
            self._on_demand_cache[seconds] = cached
            while len(self._on_demand_cache) > self.max_windows:
                self._on_demand_cache.popitem(last=False)
        try:
            return await asyncio.shield(cached)
        except Exception:
            if self._on_demand_cache.get(seconds) is cached:
                del self._on_demand_cache[seconds]
            raise

    async def _on_demand(self, seconds: int, t: int) -> RankSnapshot:
        window_ms = seconds * 1000
        if window_ms <= self.keep_hours * HOUR_MS:
            return await self._build(window_ms, t, {})
        condition = _cond(t - window_ms, t, False, True)
        answers, missing = await self._gather(influxql.stddev_range_query(condition))
        return RankSnapshot(table_from_series(a[0] for a in answers), t, missing)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh now, then ``delay_s`` after every ``refresh_s`` boundary, until stopped."""
        await self._refresher.run(stop)

    async def _refresh_once(self, due_ms: int) -> None:
        try:
            await self.refresh()
        finally:
            self.tried.set()
