"""The precomputed rank: per-series moments of every closed hour and of the minutes at
the window's edges, kept in memory, and rank tables for the default windows rebuilt from
them at every refresh (every ingest tick by default).

Hours and minutes close on the right: the hour labelled h holds (h, h + 1h], the minute
m holds (m, m + 1m], so the window (t - W, t] of a periodic refresh (t is the minute
boundary just passed) is whole minutes at its two ends and whole hours between. A
refresh asks the shards only for the minutes that closed since the last one (a minute of
points at one tick a minute or a second; raw points or moments, whichever costs the
shards less: ``rankreads``); the current hour's minutes accumulate in
memory, and once all of its minutes are in, an hour's moments are combined from them
(exactly: Chan's formula, ``moments.combine``) without asking anything. The minutes of
the hour the window starts in are read once, when the window reaches that hour, and
shared by the refreshes of the next hour. A refresh asked for at any time (a request
for a pair the table lacks) reads the part of the minute that is still open as well.

Late points (a spool replaying, a backfill still running, a rebalance copying) land in
minutes and hours already read. The shards' write counters tell when that may have
happened (``writecheck``); then, and every ``recount_hours``, one COUNT per minute of the held
span shows which minutes and hours moved, only those are read again, and the callbacks
of :attr:`RankTable.on_refreshed` hear which hours changed.

Other windows up to ``keep_hours`` are built from the same hours on demand (their edges
read from the shards); longer ones fall back to one ``STDDEV`` query per shard. Either
is cached until the next refresh, and concurrent requests for the same window share one
computation. Every table says as of when it holds (``as_of``) and which shards it lacks.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd

from federation.core import influxql, moments
from federation.core.clock import SYSTEM_CLOCK, Clock
from federation.core.durations import Duration
from federation.core.errors import Busy
from federation.core.influxql import TimeRange
from federation.core.periodic import Periodic
from federation.core.timefmt import iso_time
from federation.router.rank import places, sort_table, table_from_series
from federation.router.rankreads import Gather, Part, Reader, counts_by_bucket, merged
from federation.router.writecheck import WriteCheck, points_written

log = logging.getLogger(__name__)
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
DEFAULT_WINDOWS = (Duration(1, "h"), Duration(24, "h"))


@dataclass
class RankSnapshot:
    table: pd.DataFrame  # exchange, pair, stddev; sorted as the rank wants
    as_of: int  # epoch ms: the window is (as_of - duration, as_of]
    missing: set[str] = field(default_factory=set)
    places: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.places = places(self.table)  # once a refresh, not once a request

    def rank(self, pair: str) -> tuple[int, int] | None:
        """(rank, number of series), or None when the pair has no series in the table."""
        place = self.places.get(pair)
        return None if place is None else (place, len(self.table))


def _floor(t: int, step: int) -> int:
    return t // step * step


def _ceil(t: int, step: int) -> int:
    return -(-t // step) * step


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
        recount_hours: int = 24,
        database: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._gather = gather
        self.windows = windows
        self.keep_hours = keep_hours
        self.refresh_s = refresh_s
        self.delay_s = delay_s  # after a tick boundary, so the tick's points are stored
        self.database = database  # whose write counters count (every database's: None)
        # Hours between full counts while the write account sees no late points: the
        # net under it (a full count of 25 held hours costs influxd far more than a
        # minute's read; measured in docs/benchmarks.md).
        self.recount_hours = recount_hours
        self._hours: dict[int, Part] = {}  # closed hours (h, h + 1h] by h
        self._minutes: dict[int, Part] = {}  # closed minutes (m, m + 1m] by m
        self._runs: dict[tuple[int, int], Part] = {}  # minutes combined, by (first, end)
        self._read_to: int | None = None  # every minute before it was read once
        self._checked_hour: int | None = None  # the current hour at the last full count
        self._changed: list[int] = []  # hours found changed, told once read again
        self._writes = WriteCheck()
        self._reader = Reader(gather)  # raw or aggregated reads (router/rankreads.py)
        # Called after every refresh with the starts h of the hours (h, h + 1h] whose
        # points changed after they were read (late points), now held again, and whether
        # every shard answered (the hot cache extends and corrects itself on it).
        self.on_refreshed: list[Callable[[list[int], bool], None]] = []
        self.full_counts = 0  # refreshes that counted every held minute
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

    async def refresh(self, now_ms: int | None = None) -> None:
        """Bring the hours and minutes up to date and rebuild the default windows as of
        ``now_ms`` (the time the refresh starts when None)."""
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
        f = _floor(t, MINUTE_MS)  # minutes before it are closed
        current = _floor(f, HOUR_MS)  # the hour the minutes are of
        oldest = current - self.keep_hours * HOUR_MS
        await self._read_new_minutes(f, current, oldest)
        changed = await self._complete_hours(oldest, current)
        self._forget(oldest, current, f)
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
        for callback in self.on_refreshed:
            callback(changed, not lacking)
        if lacking:  # once per refresh; each shard's failure is logged at DEBUG
            log.warning("rank table as of %s lacks shards %s", iso_time(t), ", ".join(lacking))
        log.info(
            "rank refreshed as of %s in %.2fs (%d hours, %d minutes held)",
            iso_time(t),
            time.perf_counter() - started,
            len(self._hours),
            len(self._minutes),
        )

    async def _read_new_minutes(self, f: int, current: int, oldest: int) -> None:
        """Read the minutes closed since the last refresh (and those a shard was missing
        from), account for the shards' writes, and count every held minute when the
        account says points may have landed in them, or ``recount_hours`` passed."""
        stats, stats_missing = await self._gather(influxql.write_stats_query())
        written = {n: points_written(a, self.database) for n, a in stats.items()}
        # Minutes a shard was missing from: the current hour's are read again now,
        # the others when a window needs them.
        for m in [m for m, p in self._minutes.items() if p.missing and m < current]:
            del self._minutes[m]
            self._runs = {}
        again = [m for m, p in self._minutes.items() if p.missing]
        start = current if self._read_to is None else min(self._read_to, f)
        start = max(min([start, *again]), oldest)
        newest = await self._reader.newest(min(start, f), f)
        fresh, slack, missing = newest.parts, newest.slack, set(newest.missing)
        found: dict[str, int] = {}
        for m, part in fresh.items():
            if self._read_to is None or m >= self._read_to:  # read for the first time
                for name, n in part.counts.items():
                    found[name] = found.get(name, 0) + n
                for name, n in newest.overhead.get(m, {}).items():
                    found[name] = found.get(name, 0) + n
        self._put_minutes(fresh)
        self._read_to = f if self._read_to is None else max(self._read_to, f)
        shards = set(stats) | stats_missing | set(slack) | missing
        missing |= stats_missing
        suspect = self._writes.account(
            shards, written, found, {n: v for n, v in slack.items() if n not in missing}
        )
        due = self._checked_hour is None or (
            current - self._checked_hour >= self.recount_hours * HOUR_MS
        )
        if suspect or missing or due:
            await self._count_everything(oldest, f, current)

    async def _count_everything(self, oldest: int, f: int, current: int) -> None:
        """One COUNT per minute of the held span: every held hour and minute whose points
        changed since it was read is dropped (and read again); the callbacks hear the hours."""
        self.full_counts += 1
        answers, missing = await self._gather(
            influxql.bucket_counts_query(TimeRange(oldest, f, False, True), MINUTE_MS // 1000)
        )
        per_minute = counts_by_bucket(answers)
        changed: set[int] = set()

        def moved(counts: dict[str, int], start: int, end: int) -> bool:
            now: dict[str, int] = {}
            for m in range(start, end, MINUTE_MS):
                for name, n in per_minute.get(m, {}).items():
                    now[name] = now.get(name, 0) + n
            return any(now.get(name, 0) != counts.get(name, 0) for name in answers)

        for m, part in list(self._minutes.items()):
            if not part.missing and moved(part.counts, m, m + MINUTE_MS):
                del self._minutes[m]
                changed.add(_floor(m, HOUR_MS))
        for h, part in list(self._hours.items()):
            if not part.missing and moved(part.counts, h, h + HOUR_MS):
                del self._hours[h]
                changed.add(h)
        if changed:
            self._runs = {}
            for m in [m for m in self._minutes if _floor(m, HOUR_MS) in changed]:
                del self._minutes[m]
            reread = [m for m in range(current, f, MINUTE_MS) if m not in self._minutes]
            if reread:
                self._put_minutes(
                    await self._reader.buckets(TimeRange(reread[0], f, False, True), MINUTE_MS)
                )
        self._writes.settled(complete=not missing)
        self._checked_hour = current
        self._changed = sorted(changed)

    def _put_minutes(self, parts: dict[int, Part]) -> None:
        if any(m in self._minutes for m in parts):
            self._runs = {}
        self._minutes.update(parts)

    async def _complete_hours(self, oldest: int, current: int) -> list[int]:
        """Every closed hour held: combined from its minutes when all are held, else
        read, in runs of consecutive hours. Returns the hours found changed since they
        were first read, now read again."""
        stale = [
            h
            for h in range(oldest, current, HOUR_MS)
            if h not in self._hours or self._hours[h].missing
        ]
        to_read = []
        for h in stale:
            minutes = [self._minutes.get(m) for m in range(h, h + HOUR_MS, MINUTE_MS)]
            if all(p is not None and not p.missing for p in minutes):
                self._hours[h] = merged([p for p in minutes if p is not None])
            else:
                to_read.append(h)
        runs: list[list[int]] = []
        for h in to_read:
            if runs and runs[-1][-1] + HOUR_MS == h:
                runs[-1].append(h)
            else:
                runs.append([h])
        for run in runs:
            span = TimeRange(run[0], run[-1] + HOUR_MS, False, True)
            self._hours.update(await self._reader.buckets(span, HOUR_MS))
        changed, self._changed = self._changed, []
        return changed

    def _forget(self, oldest: int, current: int, f: int) -> None:
        """Drop the hours past ``keep_hours``, and the minutes of hours no default window
        starts or ends in."""
        for h in [h for h in self._hours if h < oldest]:
            del self._hours[h]
        keep = {current, current - HOUR_MS}
        keep |= {_floor(f - w.seconds * 1000, HOUR_MS) for w in self.windows}
        for m in [m for m in self._minutes if _floor(m, HOUR_MS) not in keep]:
            del self._minutes[m]
        self._runs = {k: v for k, v in self._runs.items() if _floor(k[0], HOUR_MS) in keep}

    async def _minute_run(self, first: int, end: int) -> Part:
        """The minutes (first, end] of one hour combined, read once when not held; a run
        that ends at an hour's end comes with every shorter one (a window's start moves
        on a minute a refresh), a run that starts at an hour's start extends the last."""
        key = (first, end)
        if key in self._runs:
            return self._runs[key]
        hour = _floor(first, HOUR_MS)
        suffix = end == hour + HOUR_MS
        needed = range(hour if suffix else first, end, MINUTE_MS)
        if any(m not in self._minutes for m in needed):
            span = TimeRange(needed[0], end, False, True)
            whole = self._hours.get(hour) if len(needed) * MINUTE_MS == HOUR_MS else None
            read = None
            if whole is not None and not whole.missing:  # the rollup, if it tells the hour
                read = await self._reader.rolled_up(span, whole.counts)
            if read is None:
                read = await self._reader.buckets(span, MINUTE_MS)
            self._put_minutes({m: p for m, p in read.items() if m not in self._minutes})
        if suffix:  # every suffix of the hour at once
            run: Part | None = None
            for m in range(end - MINUTE_MS, hour - MINUTE_MS, -MINUTE_MS):
                parts = [self._minutes[m]] if run is None else [self._minutes[m], run]
                run = merged(parts)
                self._runs[(m, end)] = run
            return self._runs[key]
        if first == hour and (first, end - MINUTE_MS) in self._runs:
            prefix = self._runs[(first, end - MINUTE_MS)]
            self._runs[key] = merged([prefix, self._minutes[end - MINUTE_MS]])
            return self._runs[key]
        self._runs[key] = merged([self._minutes[m] for m in range(first, end, MINUTE_MS)])
        return self._runs[key]

    async def _build(
        self,
        window_ms: int,
        t: int,
        edges: dict[TimeRange, asyncio.Task[tuple[pd.DataFrame, set[str]]]],
    ) -> RankSnapshot:
        """The rank table of (t - window, t] from held hours, held minutes and, where t or
        t - window is not on a minute, the open parts of those minutes."""
        start, f = t - window_ms, _floor(t, MINUTE_MS)
        parts: list[Part] = []
        conditions = []
        if start >= f:
            conditions.append(TimeRange(start, t, False, True))
        else:
            first = _ceil(start, MINUTE_MS)
            if first > start:
                conditions.append(TimeRange(start, first, False, True))
            if t > f:
                conditions.append(TimeRange(f, t, False, True))
            for a, b in _spans(first, f):
                if b - a == HOUR_MS and a % HOUR_MS == 0:
                    if a not in self._hours:
                        self._hours.update(
                            await self._reader.buckets(TimeRange(a, b, False, True), HOUR_MS)
                        )
                    parts.append(self._hours[a])
                else:
                    parts.append(await self._minute_run(a, b))
        missing = set().union(*(p.missing for p in parts)) if parts else set()
        frames = [p.moments for p in parts]
        for condition in conditions:
            if condition not in edges:
                edges[condition] = asyncio.ensure_future(self._reader.edge(condition))
            frame, edge_missing = await edges[condition]
            frames.append(frame)
            missing |= edge_missing
        table = sort_table(moments.stddev(moments.combine(frames)))
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
        condition = TimeRange(t - window_ms, t, False, True)
        answers, missing = await self._gather(influxql.stddev_range_query(condition))
        return RankSnapshot(table_from_series(a[0] for a in answers.values()), t, missing)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh now, then ``delay_s`` after every ``refresh_s`` boundary, until stopped."""
        await self._refresher.run(stop)

    async def _refresh_once(self, due_ms: int) -> None:
        try:  # as of the minute just passed: whole minutes, nothing of one still open
            await self.refresh(_floor(self.clock.now_ms(), MINUTE_MS))
        finally:
            self.tried.set()


def _spans(first: int, end: int) -> Iterable[tuple[int, int]]:
    """(first, end] (minute boundaries) cut at the hours: runs of minutes within an hour,
    and whole hours."""
    a = first
    while a < end:
        b = min(_floor(a, HOUR_MS) + HOUR_MS, end)
        yield a, b
        a = b
