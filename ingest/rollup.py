"""The ingester's side of the minute rollup (:mod:`federation.core.rollup`): the moments
of the prices each shard was sent, minute by minute, and the rollup's lines.

Each tick's *tick rows* go in the same write as its prices (one more line per shard,
not one more request: at one tick a second, a request each would cost influxd more than
the refresh it saves); the rows of the minutes the tick ended go after them, through
the same writer, so a shard that is down gets everything from the spool, in order.

A minute is rolled up (its series rows and done row written) at the first tick at or
after its end, and only when it is whole for the shard: the ingester ticked through
all of it (its first tick was the minute's first, or earlier) and nothing sent to the
shard while it was open was lost or refused for good. A point that arrives for a
minute already closed (a source's own time lagging) is told in the tick row as
``late``: the rank table then counts, as for any late point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from federation.core import moments
from federation.core.lineproto import finite_rows
from federation.core.rollup import MINUTE_MS, minute_lines, minute_of, tick_line
from federation.core.shardmap import ShardMap
from ingest.writer import ShardWriter, WriteReport


class MinuteRollup:
    def __init__(self, interval_ms: int, *, whole_from: int | None = None) -> None:
        """``whole_from``: the first minute known whole (for a writer of history that
        starts at a minute, not a tick); by default the first tick's minute, or the next."""
        self.interval_ms = interval_ms
        self._first_whole = whole_from  # the first minute this process saw whole
        self._open_from = whole_from  # minutes before it are closed
        self._open: dict[tuple[str, int], list[pd.DataFrame]] = {}  # (shard, minute)
        self._broken: set[tuple[str, int]] = set()
        self._touched: set[tuple[str, int]] = set()  # by the tick whose write is awaited

    def tick(self, time_ms: int, frame: pd.DataFrame, writer: ShardWriter) -> dict[str, list[str]]:
        """Take the tick at ``time_ms`` before its frame is written: its tick row for each
        shard the frame has points for, to write with them."""
        self._start(time_ms)
        assert self._open_from is not None
        out: dict[str, list[str]] = {}
        self._touched = set()
        clean = finite_rows(frame)
        if clean.empty:
            return out
        points = clean[["time", "exchange", "pair", "price"]].astype({"time": "int64"})
        rows = moments.from_points(points, MINUTE_MS)
        owners = writer.owner_rows(rows["pair"])  # dealt as the writer deals the prices
        names = [s.name for s in writer.shard_map.shards]
        for index in np.unique(owners).tolist():
            mine = rows[(owners == index).any(axis=1)]
            name = names[index]
            late = mine["bucket"].to_numpy() < self._open_from
            n = mine["n"].to_numpy()
            out[name] = [tick_line(time_ms, int(n[~late].sum()), int(n[late].sum()))]
            for minute, group in mine[~late].groupby("bucket"):
                key = (name, int(minute))
                self._open.setdefault(key, []).append(group.drop(columns="bucket"))
                self._touched.add(key)
        return out

    def close(self, time_ms: int, report: WriteReport, shard_map: ShardMap) -> dict[str, list[str]]:
        """After the tick at ``time_ms`` was written (``report``; an empty one for a tick
        that wrote nothing): the lines of the minutes it ended, for each shard."""
        self._start(time_ms)
        assert self._open_from is not None
        for key in self._touched:
            if report.failed.get(key[0]) or report.lost.get(key[0]):
                self._broken.add(key)
        self._touched = set()
        out: dict[str, list[str]] = {}
        closed_to = time_ms // MINUTE_MS * MINUTE_MS  # minutes before it have ended
        for minute in range(self._open_from, closed_to, MINUTE_MS):
            self._close(minute, shard_map, out)
        self._open_from = max(self._open_from, closed_to)
        return out

    def lines(
        self, time_ms: int, frame: pd.DataFrame, report: WriteReport, writer: ShardWriter
    ) -> dict[str, list[str]]:
        """Both at once, for a writer of history whose tick rows may follow its prices."""
        out = self.tick(time_ms, frame, writer)
        for name, lines in self.close(time_ms, report, writer.shard_map).items():
            out.setdefault(name, []).extend(lines)
        return out

    def _start(self, time_ms: int) -> None:
        if self._open_from is None or self._first_whole is None:
            first = minute_of(time_ms)
            # A tick one interval earlier would have been in this minute: a previous
            # process may have written it.
            whole = time_ms - self.interval_ms <= first
            self._first_whole = first if whole else first + MINUTE_MS
            self._open_from = first

    def _close(self, minute: int, shard_map: ShardMap, out: dict[str, list[str]]) -> None:
        assert self._first_whole is not None
        for shard in shard_map.shards:
            key = (shard.name, minute)
            parts = self._open.pop(key, [])
            broken = key in self._broken
            self._broken.discard(key)
            if minute < self._first_whole or broken:
                continue
            out.setdefault(shard.name, []).extend(minute_lines(minute, moments.combine(parts)))
        # Shards that left the map: their minutes are never rolled up.
        for key in [k for k in self._open if k[1] == minute]:
            del self._open[key]
            self._broken.discard(key)
