"""The hot-window cache: the last 24 h of the pairs asked for, held encoded, so that an
answer is a few slices joined instead of a fan-out, a merge and an encoding.

Per pair it holds every point at or after ``held_start`` (the time of the last
extension minus 24 h) in blocks of one hour, each block the answer's JSON elements of
its points (the same bytes :meth:`~federation.router.rows.PriceRows.encoded` writes),
with the times and exchanges that cut a window out of it. A pair is filled on its first
request (concurrent first requests share one fill) with one statement to every shard,
merged as the uncached answer merges them (:class:`~federation.router.stream.MergedPrices`).

It stays exact by three rules:

- After each count check of the rank table (one ``COUNT ... GROUP BY time(1h)`` per
  refresh, :mod:`federation.router.ranktable`), every held pair reads again the hour
  still filling when it was last read (and every later point), and the closed hours
  whose counts moved or whose moments the rank table reads for the first time (late
  points: a spool replaying, a backfill, a rebalance). The rank table's count of an hour
  is taken before these reads, so a point landing after a read moves the next count.
- A fill or an extension that lacks a shard is not kept (the pair is dropped and asked
  of the shards again on its next request); so is everything when a count check lacks a
  shard, or when the shard map changes.
- Only what the uncached path would answer the same is served from it: a window no
  longer than what is held, a pair with its rank (404s, a rank not yet in the table and
  partial ranks go the uncached way), and at least one point.

So an answer from it is the uncached answer as of the last extension (one refresh
period, like the rank), byte for byte. It is bounded in bytes (the least recently asked
pair goes first); the answers made from it are kept per pair (a few: their window
start moves a minute at a time), shared by every request that asks the same (so a
client that does not read holds a reference, not a copy), gzipped once when a client
accepts it.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from federation.core import influxql
from federation.core.clock import SYSTEM_CLOCK, Clock
from federation.core.influx import ShardClient
from federation.core.periodic import Periodic
from federation.router.answer import closing, opening
from federation.router.metrics import RouterMetrics
from federation.router.params import PairQuery
from federation.router.rows import PriceRows
from federation.router.stream import MergedPrices

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
HOLD_MS = 24 * HOUR_MS  # the default window: what a pair's entry holds
ANSWERS_PER_PAIR = 4  # encoded answers kept per pair (windows, exchanges, rank changes)
EXTENDING = 4  # pairs extended at once: each holds a connection per shard while it reads
GZIP_LEVEL = 6
TAIL = closing({})  # the end of a complete answer


class Block:
    """One hour of a pair's points: their JSON elements joined by commas, where each
    starts (and, last, where one after the end would), their times and exchanges."""

    def __init__(self, rows: PriceRows, names: dict[str, int]) -> None:
        self.encoded = rows.encoded()
        self.starts = rows.starts.copy()  # copies: not views that hold a whole answer
        self.times = rows.times.copy()
        index = [names.setdefault(e, len(names)) for e in rows.names]
        self.exchanges = np.array(index, dtype=np.uint16)[rows.codes]

    @property
    def nbytes(self) -> int:
        return len(self.encoded) + self.starts.nbytes + self.times.nbytes + self.exchanges.nbytes

    def after(self, start_ms: int) -> int:
        """The index of the first point at or after ``start_ms``."""
        return int(np.searchsorted(self.times, start_ms))

    def elements(self, first: int, exchange: int | None) -> tuple[list[bytes], int]:
        """The elements from ``first`` on (of one exchange when given), and how many."""
        if exchange is None:
            if first >= len(self.times):
                return [], 0
            whole = self.encoded if first == 0 else self.encoded[self.starts[first] :]
            return [whole], len(self.times) - first
        mine = (np.flatnonzero(self.exchanges[first:] == exchange) + first).tolist()
        starts = self.starts.tolist()
        picked = [self.encoded[starts[i] : starts[i + 1] - 1] for i in mine]
        return picked, len(picked)


class CachedAnswer:
    """One answer's bytes, shared by every request that asks the same, and its gzip,
    made once when first asked for (in a thread: ~2 MB take tens of milliseconds)."""

    def __init__(self, body: bytes, rows: int, resized: Callable[[], None]) -> None:
        self.body = body
        self.rows = rows
        self._gzip: asyncio.Future[bytes] | None = None
        self._resized = resized

    @property
    def nbytes(self) -> int:
        done = self._gzip is not None and self._gzip.done() and not self._gzip.exception()
        return len(self.body) + (len(self._gzip.result()) if done and self._gzip else 0)

    async def gzipped(self) -> bytes:
        if self._gzip is None:
            self._gzip = asyncio.ensure_future(
                asyncio.to_thread(gzip.compress, self.body, GZIP_LEVEL, mtime=0)
            )
            self._gzip.add_done_callback(lambda _: self._resized())
        return await asyncio.shield(self._gzip)


@dataclass(eq=False)
class Entry:
    """One pair's held points: every point at or after ``held_start``, by hour."""

    pair: str
    held_start: int  # epoch ms
    open_from: int  # the hour still filling when last read: read again each extension
    blocks: dict[int, Block] = field(default_factory=dict)
    names: dict[str, int] = field(default_factory=dict)  # exchange -> its index in blocks
    pending: set[int] = field(default_factory=set)  # closed hours to read again
    answers: OrderedDict[tuple[Any, ...], CachedAnswer] = field(default_factory=OrderedDict)
    nbytes: int = 0

    def replace(self, start_ms: int, end_ms: int | None, rows: PriceRows) -> None:
        """What the shards hold from ``start_ms`` to ``end_ms`` (None: on) is ``rows``
        (time-ordered); the hours it touches are replaced whole."""
        first = start_ms // HOUR_MS * HOUR_MS
        for hour in [h for h in self.blocks if h >= first and (end_ms is None or h < end_ms)]:
            del self.blocks[hour]
        while rows:
            hour = int(rows.times[0]) // HOUR_MS * HOUR_MS
            count = int(np.searchsorted(rows.times, hour + HOUR_MS))
            self.blocks[hour] = Block(rows.take(count), self.names)
        self.answers.clear()

    def trim(self, held_start: int) -> None:
        self.held_start = max(self.held_start, held_start)
        for hour in [h for h in self.blocks if h + HOUR_MS <= self.held_start]:
            del self.blocks[hour]

    def resize(self) -> None:
        self.nbytes = sum(b.nbytes for b in self.blocks.values()) + sum(
            a.nbytes for a in self.answers.values()
        )

    def prices(
        self, start_ms: int, exchange: str | None
    ) -> tuple[tuple[Any, ...], list[bytes], int]:
        """The points at or after ``start_ms`` (of ``exchange``): a key naming them (the
        same key, the same points), their elements, and how many."""
        index = None if exchange is None else self.names.get(exchange)
        if exchange is not None and index is None:
            return (), [], 0
        start_hour = start_ms // HOUR_MS * HOUR_MS
        parts, count = [], 0
        first_index = 0
        for hour in sorted(self.blocks):
            if hour < start_hour:
                continue
            block = self.blocks[hour]
            first = block.after(start_ms) if hour == start_hour else 0
            if hour == start_hour:
                first_index = first
            picked, n = block.elements(first, index)
            parts.extend(picked)
            count += n
        return (exchange, start_hour, first_index), parts, count


class HotCache:
    def __init__(
        self,
        clients: Callable[[], Mapping[str, ShardClient]],
        *,
        max_bytes: int,
        refresh_s: float,
        shard_timeout: float,
        deadline_s: float,
        metrics: RouterMetrics,
        hold_ms: int = HOLD_MS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clients = clients
        self.max_bytes = max_bytes
        self.hold_ms = hold_ms
        self._shard_timeout = shard_timeout
        self._deadline_s = deadline_s
        self._metrics = metrics
        self.clock = clock
        self.entries: OrderedDict[str, Entry] = OrderedDict()  # least recently asked first
        self._fills: dict[str, asyncio.Future[Entry | None]] = {}
        self._fill_pending: dict[str, set[int]] = {}  # hours reported during a fill
        self._epoch = 0  # moves when everything held is dropped: fills under way are not kept
        self.extended = asyncio.Event()  # set after each extension of everything held
        # Woken after each count check of the rank table; on its own at most every two
        # refresh periods, in case the rank refresh stops.
        self._extender = Periodic(
            self._extend_all, 2 * refresh_s, name="hot cache extension", clock=clock
        )

    # Told by the rank table and the federation.

    def hours_checked(self, changed: list[int], complete: bool) -> None:
        """A rank refresh: the hours (h, h + 1h] it found changed (late points) are read
        again by the next extension, which it wakes; when a shard missed the refresh,
        nothing held can be trusted."""
        if not complete:
            self.clear("a shard missed the rank table's refresh")
            return
        # The rank's hour h ends at h + 1h inclusive, which is the first instant of the
        # cache's hour h + 1h: both are read again.
        stale = sorted({h for hour in changed for h in (hour, hour + HOUR_MS)})
        for entry in self.entries.values():
            entry.pending.update(stale)
        for pending in self._fill_pending.values():
            pending.update(stale)
        self._extender.wake()

    def clear(self, why: str) -> None:
        """Drop everything held; fills under way are not kept."""
        if self.entries:
            log.info("hot cache dropped %d pairs: %s", len(self.entries), why)
        self.entries.clear()
        self._epoch += 1
        self._account()

    # Answers.

    def holds(self, q: PairQuery) -> bool:
        """Whether the window of ``q`` is one the cache holds."""
        return q.duration.seconds * 1000 <= self.hold_ms

    async def answer(
        self, q: PairQuery, head: dict[str, Any], max_rows: int | None = None
    ) -> CachedAnswer | None:
        """The answer of ``q`` with ``head`` from what is held (filled first when the pair
        is not), or None: not held (a shard missing from the fill), no point in the window
        or more than ``max_rows``."""
        entry = self.entries.get(q.pair)
        if entry is not None:
            self.entries.move_to_end(q.pair)
            self._metrics.hot_cache_hits.inc()
        else:
            self._metrics.hot_cache_misses.inc()
            entry = await self._filled(q.pair)
            if entry is None:
                return None
        start = self.clock.now_ms() - q.duration.seconds * 1000 + 1
        if start < entry.held_start:
            return None
        head_bytes = opening(head)
        where, parts, rows = entry.prices(start, q.exchange)
        if not rows:
            return None
        key = (*where, head_bytes)
        cached = entry.answers.get(key)
        if cached is None:
            body = b"".join((head_bytes, b",".join(parts), TAIL))
            cached = entry.answers[key] = CachedAnswer(body, rows, lambda: self._resized(entry))
            while len(entry.answers) > ANSWERS_PER_PAIR:
                entry.answers.popitem(last=False)
            self._resized(entry)
        else:
            entry.answers.move_to_end(key)
        if max_rows is not None and cached.rows > max_rows:
            return None
        return cached

    async def _filled(self, pair: str) -> Entry | None:
        fill = self._fills.get(pair)
        if fill is None:
            fill = self._fills[pair] = asyncio.ensure_future(self._fill(pair))
            self._fill_pending[pair] = set()

            def done(_: object) -> None:
                if self._fills.get(pair) is fill:
                    del self._fills[pair]
                    self._fill_pending.pop(pair, None)

            fill.add_done_callback(done)
        return await asyncio.shield(fill)

    async def _fill(self, pair: str) -> Entry | None:
        epoch, t = self._epoch, self.clock.now_ms()
        held_start = t - self.hold_ms + 1
        rows, missing = await self._read(pair, held_start, None)
        if missing or not rows or epoch != self._epoch:
            return None  # a partial fill is never kept, nor an empty one
        entry = Entry(pair, held_start, t // HOUR_MS * HOUR_MS)
        entry.replace(held_start, None, rows)
        entry.pending = self._fill_pending.get(pair, set())
        self.entries[pair] = entry
        self._resized(entry)
        return entry

    async def _read(self, pair: str, start_ms: int, end_ms: int | None) -> tuple[PriceRows, bool]:
        """The pair's points from every shard, merged; and whether a shard was missing."""
        merged = MergedPrices(
            self._clients(),
            influxql.prices_range_query(pair, start_ms, end_ms),
            shard_timeout=self._shard_timeout,
            deadline_s=self._deadline_s,
        )
        batches = [batch async for batch in merged.batches()]
        return PriceRows.joined(batches), bool(merged.missing)

    # Extension.

    async def run(self, stop: asyncio.Event) -> None:
        """Extend after each count check of the rank table, until stopped."""
        await self._extender.run(stop)

    async def _extend_all(self, due_ms: int) -> None:
        t = self.clock.now_ms()
        entries = list(self.entries.values())
        room = asyncio.Semaphore(EXTENDING)

        async def extend(entry: Entry) -> None:
            async with room:
                await self._extend(entry, t)

        await asyncio.gather(*(extend(entry) for entry in entries))
        self._account()
        self.extended.set()

    async def _extend(self, entry: Entry, t: int) -> None:
        epoch, held_start = self._epoch, t - self.hold_ms + 1
        pending, entry.pending = entry.pending, set()
        hours = sorted(h for h in pending if held_start - HOUR_MS < h < entry.open_from)
        spans: list[tuple[int, int | None]] = []
        for hour in hours:
            if spans and spans[-1][1] == hour:
                spans[-1] = (spans[-1][0], hour + HOUR_MS)
            else:
                spans.append((max(hour, held_start), hour + HOUR_MS))
        spans.append((max(entry.open_from, held_start), None))
        reads = await asyncio.gather(*(self._read(entry.pair, s, e) for s, e in spans))
        if epoch != self._epoch or self.entries.get(entry.pair) is not entry:
            return  # dropped meanwhile
        if any(missing for _, missing in reads):
            del self.entries[entry.pair]  # a partial extension is never kept
            log.info("hot cache dropped %s: a shard missed its extension", entry.pair)
            return
        for (start, end), (rows, _) in zip(spans, reads, strict=True):
            entry.replace(start, end, rows)
        entry.trim(held_start)
        entry.open_from = t // HOUR_MS * HOUR_MS
        if not entry.blocks:
            del self.entries[entry.pair]
        entry.resize()

    # The bound.

    def _resized(self, entry: Entry) -> None:
        entry.resize()
        self._account()

    def _account(self) -> None:
        """Drop the least recently asked pairs until the cache is within its bound."""
        total = sum(e.nbytes for e in self.entries.values())
        while total > self.max_bytes and self.entries:
            _, dropped = self.entries.popitem(last=False)
            total -= dropped.nbytes
            self._metrics.hot_cache_evictions.inc()
        self._metrics.hot_cache_bytes.set(total)
        self._metrics.hot_cache_pairs.set(len(self.entries))
