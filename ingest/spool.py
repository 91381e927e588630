"""The durable spool: per-shard queues on local disk for batches a shard could not take.

Layout, under the spool directory (``.spool/`` by default)::

    <shard>/000000000042-1700000000000-5000.lp   one batch: sequence, time spooled (ms), points
    <shard>/dead-letter.lp                       batches the shard refused (4xx), with the reason
    <shard>/status.json                          depth, age and counters, for people and the router

A batch file is the exact line-protocol body that would have been posted (every line
ends in a newline). It is written to a temporary name, fsynced, renamed into place and
the directory fsynced: a batch counts as spooled only then, so a crash at any point
leaves either the whole batch or none of it (a leftover ``.tmp`` was never acknowledged
and is removed at open). Batches leave the queue in sequence order, and only once the
shard stored them; a replay of a batch the shard had already stored (the crash came
between the write and the unlink) rewrites the same points with the same values, which
InfluxDB keeps once.

Caps: a queue older than ``max_age_s`` or larger than ``max_bytes`` drops its oldest
batches, counted and logged as errors, so a shard that never comes back cannot fill
the disk. A batch the shard refused for good (malformed line protocol) goes to
``dead-letter.lp`` with a ``#`` comment line giving the reason (InfluxDB's line
protocol skips comment lines, so the file can be fixed and imported by hand); it never
goes back into the queue to block the batches behind it.

Every file is read tolerantly: a batch or dead-letter file whose tail is torn (a line
without its newline: a disk that filled, a file cut by hand) has that tail cut and
logged, never a reason not to start; a batch file cut this way is renamed to its new
point count. Nothing leaves a queue unless the shard stored it, it went to the
dead-letter file, or a cap dropped it; what could be neither stored, spooled nor
dead-lettered (a disk full at that moment, a batch file gone) is counted as lost. All
of it is in ``status.json``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from federation.core.clock import now_ms as _now_ms
from ingest.spoolfiles import (
    append_durably,
    cut_file_tail,
    cut_torn,
    dead_letter_figures,
    ends_whole,
    fsync_dir,
    private_dir,
    private_file,
    write_durably,
)

log = logging.getLogger(__name__)

_BATCH_NAME = re.compile(r"^(\d{12})-(\d+)-(\d+)\.lp$")
DEAD_LETTER = "dead-letter.lp"
STATUS = "status.json"


@dataclass(frozen=True)
class Entry:
    seq: int
    created_ms: int
    points: int
    size: int
    path: Path
    dealt_by: int = -1  # the writer's map generation that dealt its lines (-1: unknown)


class ShardQueue:
    """One shard's queue. Appends go to the tail, the drainer takes from the head; both
    run on the event loop and do their file work in a thread."""

    def __init__(self, name: str, directory: Path, max_bytes: int, max_age_s: float) -> None:
        self.name = name
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.entries: deque[Entry] = deque()
        self._points = 0  # running totals of the entries, kept by _push and _pop
        self._bytes = 0
        self.in_flight: Entry | None = None  # the head batch being replayed right now
        self.dead_batches = 0
        self.dead_points = 0
        self.dropped_batches = 0
        self.dropped_points = 0
        self.replayed_batches = 0
        self.replayed_points = 0
        self.rerouted_batches = 0  # batches whose lines went (in part) to the pairs' new owners
        self.rerouted_points = 0
        self.lost_batches = 0  # neither stored, spooled nor dead-lettered (counted, logged)
        self.lost_points = 0
        self.torn_files = 0  # files whose torn tail was cut
        self.last_error: str | None = None
        self._next_seq = 0
        self._written_figures: dict[str, Any] | None = None  # what status.json last said
        self._written_at = 0.0
        # Appends one at a time: each numbers its batches from _next_seq before its
        # thread writes them, so two at once (the router's concurrent /write requests)
        # would give two batches one name, and the second file would replace the first.
        self._appending = asyncio.Lock()
        self._dead_lettering = asyncio.Lock()  # likewise: one append to the file at a time
        self._open()

    def _open(self) -> None:
        private_dir(self.directory)
        found: dict[Path, Entry] = {}
        for path in sorted(self.directory.iterdir()):
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # never acknowledged: its tick reported it lost
                continue
            match = _BATCH_NAME.match(path.name)
            if match:
                seq, created, points = (int(g) for g in match.groups())
                entry = self._checked(Entry(seq, created, points, path.stat().st_size, path))
                if entry is not None:
                    found[entry.path] = entry
            elif path.suffix == ".lp" and path.name != DEAD_LETTER:
                log.warning("spool %s: %s is not a batch name; left alone", self.name, path)
        entries = sorted(found.values(), key=lambda e: e.seq)
        self._push(entries)
        self._next_seq = entries[-1].seq + 1 if entries else 0
        self._count_dead_letters()
        if entries:
            log.warning(
                "spool %s: %d batches (%d points) left from an earlier run; replaying them",
                self.name,
                len(entries),
                self.points,
            )

    def _checked(self, entry: Entry) -> Entry | None:
        """``entry`` as found at open; a torn batch is cut to its whole lines and renamed
        to its new point count (the rename first, so a crash between the two leaves a
        torn file that is cut to the same name again), an empty one removed."""
        try:
            return self._cut(entry)
        except OSError as exc:  # the drainer's read cuts it again
            log.warning("spool %s: cannot check batch %s: %s", self.name, entry.path, exc)
            return entry

    def _cut(self, entry: Entry) -> Entry | None:
        if ends_whole(entry.path):
            return entry
        body, cut = cut_torn(entry.path.read_bytes())
        points = body.count(b"\n")
        self.torn_files += 1
        self.lost_points += max(0, entry.points - points)
        log.warning(
            "spool %s: batch %s was torn: cut %d bytes, %d of its %d points kept",
            self.name,
            entry.path.name,
            cut,
            points,
            entry.points,
        )
        if not points:
            self.lost_batches += 1
            entry.path.unlink()
            return None
        path = entry.path.with_name(f"{entry.seq:012d}-{entry.created_ms}-{points}.lp")
        write_durably(path, body)
        if path != entry.path:
            entry.path.unlink()
            fsync_dir(self.directory)
        return Entry(entry.seq, entry.created_ms, points, len(body), path)

    def _count_dead_letters(self) -> None:
        """The dead-letter figures from the file; a torn tail is cut (an append that
        failed half-way), a header that cannot be read is logged and skipped."""
        dead = self.directory / DEAD_LETTER
        try:
            whole = self._cut_dead_letters(dead)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("spool %s: cannot read %s: %s", self.name, dead, exc)
            return
        self.dead_batches, self.dead_points, unreadable = dead_letter_figures(whole)
        if unreadable:
            log.warning(
                "spool %s: %d headers of %s cannot be read; their points are not counted",
                self.name,
                unreadable,
                dead,
            )

    def _cut_dead_letters(self, dead: Path) -> bytes:
        whole, cut = cut_file_tail(dead)
        if cut:
            self.torn_files += 1
            log.warning("spool %s: cut %d torn bytes off the end of %s", self.name, cut, dead)
        return whole

    @property
    def depth(self) -> int:
        return len(self.entries)

    @property
    def points(self) -> int:
        return self._points

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _push(self, entries: list[Entry]) -> None:
        self.entries.extend(entries)
        self._points += sum(e.points for e in entries)
        self._bytes += sum(e.size for e in entries)

    def _pop(self) -> Entry:
        entry = self.entries.popleft()
        self._points -= entry.points
        self._bytes -= entry.size
        return entry

    def oldest_age_s(self, now_ms: int | None = None) -> float:
        if not self.entries:
            return 0.0
        return max(0.0, ((now_ms or _now_ms()) - self.entries[0].created_ms) / 1000)

    async def append(self, bodies: list[bytes], dealt_by: int = -1) -> tuple[int, OSError | None]:
        """Spool ``bodies`` durably, in order: how many of them were spooled (the first
        ones), and the error that stopped the others. The queue holds exactly the batches
        on disk, even when one fails half-way. ``dealt_by`` is remembered in memory: the
        writer's map generation that placed the lines."""
        async with self._appending:
            return await self._append(bodies, dealt_by)

    async def _append(self, bodies: list[bytes], dealt_by: int) -> tuple[int, OSError | None]:
        now = _now_ms()
        planned = []
        for seq, body in enumerate(bodies, start=self._next_seq):
            points = body.count(b"\n")
            name = f"{seq:012d}-{now}-{points}.lp"
            planned.append(Entry(seq, now, points, len(body), self.directory / name, dealt_by))
        done = 0
        error: OSError | None = None

        def work() -> None:
            nonlocal done
            for entry, body in zip(planned, bodies, strict=True):
                write_durably(entry.path, body)
                done += 1

        try:
            await asyncio.to_thread(work)
        except OSError as exc:
            error = exc
        self._push(planned[:done])
        self._next_seq += done
        await self.enforce_caps()
        return done, error

    def lose(self, bodies: list[bytes], reason: str) -> None:
        """Count batches that could be neither stored, spooled nor dead-lettered."""
        points = sum(b.count(b"\n") for b in bodies)
        self.lost_batches += len(bodies)
        self.lost_points += points
        self.last_error = reason
        log.error(
            "spool %s: %d batches (%d points) lost: %s", self.name, len(bodies), points, reason
        )

    def head(self) -> Entry | None:
        return self.entries[0] if self.entries else None

    async def read(self, entry: Entry) -> bytes:
        """The batch's body; a tail torn since the queue was opened is cut and counted."""
        body, cut = cut_torn(await asyncio.to_thread(entry.path.read_bytes))
        if cut:
            self.torn_files += 1
            self.lost_points += max(0, entry.points - body.count(b"\n"))
            log.warning("spool %s: batch %s was torn: cut %d bytes", self.name, entry.path, cut)
        return body

    async def forget(self, entry: Entry, reason: str) -> None:
        """Take the head off the queue, counted as lost (its file is gone)."""
        await self.remove(entry, replayed=False)
        self.lost_batches += 1
        self.lost_points += entry.points
        log.error("spool %s: batch %s lost: %s", self.name, entry.path.name, reason)

    async def remove(self, entry: Entry, *, replayed: bool = True) -> None:
        """Take ``entry`` (the head) off the queue once the shard stored it."""
        await asyncio.to_thread(entry.path.unlink, missing_ok=True)
        if self.entries and self.entries[0] is entry:
            self._pop()
        if replayed:
            self.replayed_batches += 1
            self.replayed_points += entry.points

    async def dead_letter(self, body: bytes, reason: str, entry: Entry | None = None) -> None:
        """Append a batch the shard refused for good to the dead-letter file, with why;
        ``entry`` (the queue's head) leaves the queue, a batch refused on its first write
        never entered it."""
        points = body.count(b"\n")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        reason_line = " ".join(reason.split())
        seq = "-" if entry is None else str(entry.seq)
        header = f"# dead-letter {stamp} seq={seq} points={points} reason: {reason_line}\n"
        path = self.directory / DEAD_LETTER
        async with self._dead_lettering:
            await asyncio.to_thread(append_durably, path, header.encode() + body)
        if entry is not None:
            await self.remove(entry, replayed=False)
        self.dead_batches += 1
        self.dead_points += points
        log.error(
            "spool %s: a batch of %d points refused by the shard went to %s: %s",
            self.name,
            points,
            path,
            reason_line,
        )

    async def enforce_caps(self) -> None:
        """Drop the oldest batches past the age or size cap (never the one in flight)."""
        now = _now_ms()
        total = self.size_bytes
        dropped: list[Entry] = []
        while self.entries and self.entries[0] is not self.in_flight:
            head = self.entries[0]
            too_old = (now - head.created_ms) / 1000 > self.max_age_s
            if not (too_old or total > self.max_bytes):
                break
            self._pop()
            total -= head.size
            dropped.append(head)
        if not dropped:
            return

        def unlink_all() -> None:
            for entry in dropped:
                entry.path.unlink(missing_ok=True)

        await asyncio.to_thread(unlink_all)
        points = sum(e.points for e in dropped)
        self.dropped_batches += len(dropped)
        self.dropped_points += points
        log.error(
            "spool %s: over its cap (%.0f MB or %.0f h): dropped the %d oldest batches (%d points)",
            self.name,
            self.max_bytes / 1e6,
            self.max_age_s / 3600,
            len(dropped),
            points,
        )

    def status(self) -> dict[str, Any]:
        now = _now_ms()
        return {
            "shard": self.name,
            "batches": self.depth,
            "points": self.points,
            "bytes": self.size_bytes,
            "oldest_age_s": round(self.oldest_age_s(now), 3),
            "oldest_spooled_ms": self.entries[0].created_ms if self.entries else None,
            "replayed_batches": self.replayed_batches,
            "replayed_points": self.replayed_points,
            "dead_letter_batches": self.dead_batches,
            "dead_letter_points": self.dead_points,
            "dropped_batches": self.dropped_batches,
            "dropped_points": self.dropped_points,
            "lost_batches": self.lost_batches,
            "lost_points": self.lost_points,
            "torn_files": self.torn_files,
            "rerouted_batches": self.rerouted_batches,
            "rerouted_points": self.rerouted_points,
            "max_bytes": self.max_bytes,
            "max_age_s": self.max_age_s,
            "last_error": self.last_error,
            "updated_ms": now,
        }

    def write_status(self, *, every_s: float = 10.0) -> None:
        """``status.json``, replaced atomically (no fsync: it is recomputed at every open),
        when a figure changed or ``every_s`` passed (an idle queue costs no disk writes)."""
        status = self.status()
        figures = {k: v for k, v in status.items() if k not in ("updated_ms", "oldest_age_s")}
        now = time.monotonic()
        if figures == self._written_figures and now - self._written_at < every_s:
            return
        path = self.directory / STATUS
        tmp = path.with_name(STATUS + ".tmp")
        with private_file(tmp) as f:
            f.write(orjson.dumps(status, option=orjson.OPT_INDENT_2))
        tmp.replace(path)
        self._written_figures, self._written_at = figures, now


class Spool:
    """The queues of every shard under one directory."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_bytes: int = 1024 * 1024 * 1024,
        max_age_s: float = 7 * 86400,
    ) -> None:
        if max_bytes <= 0 or max_age_s <= 0:
            raise ValueError("spool caps must be positive")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.queues: dict[str, ShardQueue] = {}
        private_dir(self.root)

    def queue(self, shard: str) -> ShardQueue:
        if shard not in self.queues:
            self.queues[shard] = ShardQueue(
                shard, self.root / shard, self.max_bytes, self.max_age_s
            )
        return self.queues[shard]

    def open_all(self, shards: list[str]) -> None:
        """Open the queue of every shard of the map, and warn of spools of other shards."""
        for name in shards:
            self.queue(name)
        for path in sorted(self.root.iterdir()):
            if path.is_dir() and path.name not in self.queues and any(path.glob("*.lp")):
                log.warning(
                    "spool %s belongs to a shard that is not in the map: its batches stay on"
                    " disk until that shard is back in shards.yaml",
                    path,
                )

    def summary(self) -> str | None:
        """One log line about the queues that hold batches, or None when all are empty."""
        parts = [
            f"{q.name}: {q.depth} batches, {q.points} points, oldest {q.oldest_age_s():.1f}s"
            for q in self.queues.values()
            if q.depth
        ]
        return "spool " + "; ".join(parts) if parts else None

    def write_status(self) -> None:
        for queue in self.queues.values():
            try:
                queue.write_status()
            except OSError as exc:
                log.warning("spool %s: cannot write %s: %s", queue.name, STATUS, exc)
