"""What the rank table reads from the shards (moments of hours and minutes, the newest
minutes with the write account's slack, a window's open edges), each in the form that
costs the shards least.

What a refresh asks of influxd 1.6 costs mostly per series the statement touches and
per row it answers, and an aggregate per series is dear: measured (``python -m bench
refreshcost``, docs/benchmarks.md) at 14,000 series on 4 shards, the minute's COUNT,
MEAN and STDDEV per series cost 1.7 s of influxd CPU, the count of newer points 0.2 s,
and the same minute's points sent raw (one series of rows, tags as columns) 0.25 s. So
while a minute holds few points a series (one tick a minute: one), the refresh asks for
every point newer than what it read, raw, in one statement, and makes the minutes'
moments itself; the points past the minute the table is as of are the write account's
slack. The minutes read once an hour (those of the hour the 24 h window starts in) and
those read again after late points come raw as well. With many points a series (1 s
ticks: 60) raw rows cost influxd about what the aggregates do, and the router the
parsing of every row, so the moments and the count are asked for as before.

Cheapest of all is the ingester's minute rollup (:mod:`federation.core.rollup`): a row
per series a minute in one series per minute of the hour, and a tick row per tick. When
every shard holds it whole for the newest minutes, a refresh reads those minutes' moments
and the slack (the tick rows past the minute) from it and nothing else, whatever the
tick rate; the minutes of the hour the 24 h window reaches come from it too when it
tells the points the table's count of that hour says the shards hold. Otherwise (no
ingester, one that started mid-minute or lags, a minute some shard lacks), the reads
above; the rollup's own rows are then only counted, for the write account.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pandas as pd

from federation.core import influxql, moments, rollup
from federation.core.influxql import Statement, TimeRange
from federation.core.types import Series

MINUTE_MS = 60_000
DAY_MS = 86_400_000
# Points per series per minute up to which minutes are read raw. Measured at 14,000
# series on 4 shards: a minute's aggregates cost influxd ~1.7 s + 0.05 s per point a
# series, its raw points ~0.17 s + 0.07 s per point a series (even at 60, one tick a
# second, raw is no dearer). Past 20 raw saves influxd little while the router parses
# every row (840,000 a minute at 60): 20 is a judgment on those figures, not an optimum.
RAW_MAX_POINTS = 20.0

Answer = list[list[Series]]
# (each answering shard's answer by name, names of missing shards)
Gather = Callable[[Statement], Awaitable[tuple[dict[str, Answer], set[str]]]]
_COLUMNS = ("time", "price", "exchange", "pair")


@dataclass
class Part:
    """The moments of one closed hour or minute, as read (or combined)."""

    moments: pd.DataFrame
    missing: set[str]
    counts: dict[str, int]  # points per answering shard (each replica counted)


@dataclass
class Newest:
    """The minutes (start, f] read from raw points, and what came after them."""

    parts: dict[int, Part]  # by minute m: (m, m + 1m]
    slack: dict[str, int]  # points newer than f, per answering shard
    missing: set[str]
    points_per_series: float  # in a minute, on average over the minutes read
    # Points each shard stores in a minute besides its prices (the rollup's own rows),
    # which its write counter counts as well.
    overhead: dict[int, dict[str, int]] = field(default_factory=dict)


def _points(answer: Answer) -> pd.DataFrame:
    """One shard's raw rows (time, price, exchange, pair). Not read: a series'
    ``partial``, which influxd 1.6 sets on a whole answer of over 10,000 rows that was
    not asked for in chunks (a server's ``max-row-limit``, 0 by default, is not met)."""
    frames = [
        pd.DataFrame(series["values"], columns=series["columns"])[list(_COLUMNS)]
        for series in (answer[0] if answer else [])
    ]
    if not frames:
        return pd.DataFrame({c: [] for c in _COLUMNS})
    return pd.concat(frames, ignore_index=True)


def from_points(answers: dict[str, Answer], missing: set[str], start: int, f: int) -> Newest:
    """The minutes (start, f] and the slack from every shard's answer to
    :func:`~federation.core.influxql.points_query` over (start, f + ...]."""
    counts: dict[int, dict[str, int]] = {}
    slack: dict[str, int] = {}
    kept = []
    for name, answer in answers.items():
        points = _points(answer)
        times = points["time"].astype("int64")
        closed = points[times <= f]
        slack[name] = int((times > f).sum())
        minute = (closed["time"].astype("int64") - 1) // MINUTE_MS * MINUTE_MS
        for m, n in minute.value_counts().items():
            counts.setdefault(int(m), {})[name] = int(n)
        kept.append(closed)
    rows = pd.concat(kept, ignore_index=True) if kept else None
    if rows is not None and not rows.empty:
        rows = rows.astype({"time": "int64", "price": "float64"})
        rows = rows.drop_duplicates(["time", "exchange", "pair"])  # replicas count once
    frame = moments.from_points(rows if rows is not None else pd.DataFrame(), MINUTE_MS)
    by_minute = dict(tuple(frame.groupby("bucket"))) if not frame.empty else {}
    parts = {
        m: Part(by_minute.get(m, frame.iloc[0:0]), set(missing), counts.get(m, {}))
        for m in range(start, f, MINUTE_MS)
    }
    return Newest(parts, slack, missing, points_per_series(frame, (f - start) // MINUTE_MS))


def points_per_series(frame: pd.DataFrame, minutes: int) -> float:
    """Points a series holds in a minute, on average, from moments rows of ``minutes``."""
    if frame.empty or minutes <= 0:
        return 0.0
    series = int(frame[list(moments.KEY)].drop_duplicates().shape[0])
    return float(frame["n"].sum()) / float(series * minutes)


def counts_by_bucket(answers: dict[str, Answer]) -> dict[int, dict[str, int]]:
    """Points per bucket and shard, from answers whose second column is a COUNT."""
    out: dict[int, dict[str, int]] = {}
    for name, answer in answers.items():
        for series in answer[0] if answer else []:
            for row in series["values"]:
                if row[1]:
                    per_shard = out.setdefault(int(row[0]), {})
                    per_shard[name] = per_shard.get(name, 0) + int(row[1])
    return out


def merged(parts: list[Part]) -> Part:
    """Parts of one span combined: moments exactly, counts summed, shards missing from any."""
    counts: dict[str, int] = {}
    for part in parts:
        for name, n in part.counts.items():
            counts[name] = counts.get(name, 0) + n
    missing = set().union(*(p.missing for p in parts)) if parts else set()
    return Part(moments.combine(p.moments for p in parts), missing, counts)


class Reader:
    """The rank table's reads, raw while a series holds few points a minute (as last
    read; unknown before the first read, so aggregated then)."""

    def __init__(self, gather: Gather) -> None:
        self._gather = gather
        self.points_per_series: float | None = None

    @property
    def raw(self) -> bool:
        return self.points_per_series is not None and self.points_per_series <= RAW_MAX_POINTS

    async def edge(self, span: TimeRange) -> tuple[pd.DataFrame, set[str]]:
        """The moments per series of a span that is no whole bucket (a window's edge)."""
        answers, missing = await self._gather(influxql.moments_query(span))
        return moments.from_series(a[0] for a in answers.values()), missing

    async def buckets(self, span: TimeRange, bucket_ms: int) -> dict[int, Part]:
        """The moments of every bucket (b, b + bucket] in ``span`` (whose ends are bucket
        boundaries), buckets without points included: minutes raw while a series holds
        few points a minute, else (and hours) as moments per series."""
        if bucket_ms == MINUTE_MS and self.raw:
            answers, missing = await self._gather(influxql.points_query(span))
            return from_points(answers, missing, span.start_ms, span.end_ms).parts
        answers, missing = await self._gather(influxql.moments_query(span, bucket_ms // 1000))
        frame = moments.from_series(a[0] for a in answers.values())
        by_bucket = dict(tuple(frame.groupby("bucket"))) if not frame.empty else {}
        counts = counts_by_bucket(answers)
        return {
            b: Part(by_bucket.get(b, frame.iloc[0:0]), set(missing), counts.get(b, {}))
            for b in range(span.start_ms, span.end_ms, bucket_ms)
        }

    async def newest(self, start: int, f: int) -> Newest:
        """The minutes (start, f] (none when ``start == f``) and the points newer than f
        per shard: from the minute rollup when every shard holds it whole for them, else
        one statement of raw points, or the minutes' moments and a count."""
        minutes = range(start, f, MINUTE_MS)
        span = TimeRange(start, f + DAY_MS, False, True)
        rollups, missing, whole = await self._rollups(span, minutes)
        # With no minute to read, the rollup cannot tell the slack (no tick row may mean
        # no ingester): the points are counted.
        if minutes and rollups and whole:
            return self._from_rollups(rollups, missing, start, f)
        newest = await self._newest_read(start, f)
        # The rollup's rows the shards hold all the same (a minute not yet whole, a
        # rollup some shard lacks): the write account expects them too.
        for name, held in rollups.items():
            for m in minutes:
                newest.overhead.setdefault(m, {})[name] = held.stored(m)
            if name in newest.slack:
                newest.slack[name] += sum(1 for t, _, _ in held.ticks if t > f)
        return newest

    async def rolled_up(self, span: TimeRange, counts: dict[str, int]) -> dict[int, Part] | None:
        """The minutes of ``span`` from the rollup, when every shard holds it whole for them
        and it tells, per shard, the points ``counts`` says the shards hold (a held hour's
        counts: late points since the rollup was written would show there); else None."""
        minutes = range(span.start_ms, span.end_ms, MINUTE_MS)
        rollups, missing, whole = await self._rollups(span, minutes)
        if missing or not whole:
            return None
        told = {name: sum(r.done[m][1] for m in minutes) for name, r in rollups.items()}
        if any(told.get(name, 0) != counts.get(name, 0) for name in {*told, *counts}):
            return None
        return self._from_rollups(rollups, missing, span.start_ms, span.end_ms).parts

    async def _rollups(
        self, span: TimeRange, minutes: range
    ) -> tuple[dict[str, rollup.ShardRollup], set[str], bool]:
        """Each answering shard's rollup in ``span`` (the series rows of ``minutes``
        only), the shards missing, and whether every answering shard holds each of
        ``minutes`` whole."""
        answers, missing = await self._gather(influxql.rollup_query(span, tuple(minutes)))
        rollups = {name: rollup.read(a[0] if a else []) for name, a in answers.items()}
        whole = all(r.complete(m) for r in rollups.values() for m in minutes)
        return rollups, missing, whole

    def _from_rollups(
        self, rollups: dict[str, rollup.ShardRollup], missing: set[str], start: int, f: int
    ) -> Newest:
        parts, overhead = {}, {}
        for m in range(start, f, MINUTE_MS):
            frames = [r.moments[m] for r in rollups.values() if m in r.moments]
            frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            if not frame.empty:
                frame = frame.drop_duplicates(["bucket", *moments.KEY])  # replicas count once
            else:
                frame = moments.from_points(pd.DataFrame(), MINUTE_MS)
            counts = {name: r.done[m][1] for name, r in rollups.items()}
            parts[m] = Part(frame, set(missing), counts)
            overhead[m] = {name: r.stored(m) for name, r in rollups.items()}
        slack = {
            name: sum(points + 1 for t, points, _ in r.ticks if t > f)
            for name, r in rollups.items()
        }
        if parts:
            frame = moments.combine(p.moments for p in parts.values())
            self.points_per_series = points_per_series(frame, len(parts))
        return Newest(parts, slack, missing, self.points_per_series or 0.0, overhead)

    async def _newest_read(self, start: int, f: int) -> Newest:
        if self.raw:
            span = TimeRange(start, f + DAY_MS, False, True)
            answers, missing = await self._gather(influxql.points_query(span))
            newest = from_points(answers, missing, start, f)
            if start < f:
                self.points_per_series = newest.points_per_series
            return newest
        fresh = await self.buckets(TimeRange(start, f, False, True), MINUTE_MS) if start < f else {}
        if fresh:
            frame = moments.combine(p.moments for p in fresh.values())
            self.points_per_series = points_per_series(frame, len(fresh))
        answers, missing = await self._gather(
            influxql.count_query(TimeRange(f, f + DAY_MS, False, True))
        )
        slack = {n: 0 for n in answers}
        for per_shard in counts_by_bucket(answers).values():
            for name, n in per_shard.items():
                slack[name] += n
        missing |= set().union(*(p.missing for p in fresh.values()))
        return Newest(fresh, slack, missing, self.points_per_series or 0.0)
