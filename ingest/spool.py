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
the disk. A batch the shard refused as malformed (400) or otherwise final (4xx) goes to
``dead-letter.lp`` with a ``#`` comment line giving the reason (InfluxDB's line
protocol skips comment lines, so the file can be fixed and imported by hand); it never
goes back into the queue to block the batches behind it.
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
from typing import Any, BinaryIO

import orjson

from federation.core.clock import now_ms as _now_ms

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


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(directory: Path) -> None:
    """``directory`` (made if missing) readable by its owner only: batches hold every
    price and volume written, and only the ingester and the router read them."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)


def _private_file(path: Path, *, append: bool) -> BinaryIO:
    """``path`` opened for writing, created readable by its owner only."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, 0o600), "ab" if append else "wb")


def _write_durably(path: Path, data: bytes, *, append: bool = False) -> None:
    if append:
        with _private_file(path, append=True) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return
    tmp = path.with_name(path.name + ".tmp")
    with _private_file(tmp, append=False) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.rename(path)
    _fsync_dir(path.parent)


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
        self.last_error: str | None = None
        self._next_seq = 0
        self._written_figures: dict[str, Any] | None = None  # what status.json last said
        self._written_at = 0.0
        self._open()

    def _open(self) -> None:
        private_dir(self.directory)
        found: list[Entry] = []
        for path in self.directory.iterdir():
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # never acknowledged: its tick reported it lost
                continue
            match = _BATCH_NAME.match(path.name)
            if match:
                seq, created, points = (int(g) for g in match.groups())
                found.append(Entry(seq, created, points, path.stat().st_size, path))
        found.sort(key=lambda e: e.seq)
        self._push(found)
        self._next_seq = found[-1].seq + 1 if found else 0
        dead = self.directory / DEAD_LETTER
        if dead.exists():
            with dead.open("rb") as f:
                for line in f:
                    if line.startswith(b"# dead-letter "):
                        self.dead_batches += 1
                        self.dead_points += int(line.split(b"points=", 1)[1].split()[0])
        if found:
            log.warning(
                "spool %s: %d batches (%d points) left from an earlier run; replaying them",
                self.name,
                len(found),
                self.points,
            )

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

    async def append(self, bodies: list[bytes]) -> int:
        """Spool ``bodies`` durably, in order; returns the points spooled."""
        now = _now_ms()
        planned = []
        for body in bodies:
            points = body.count(b"\n")
            name = f"{self._next_seq:012d}-{now}-{points}.lp"
            planned.append(Entry(self._next_seq, now, points, len(body), self.directory / name))
            self._next_seq += 1

        def work() -> None:
            for entry, body in zip(planned, bodies, strict=True):
                _write_durably(entry.path, body)

        await asyncio.to_thread(work)
        self._push(planned)
        await self.enforce_caps()
        return sum(e.points for e in planned)

    def head(self) -> Entry | None:
        return self.entries[0] if self.entries else None

    async def read(self, entry: Entry) -> bytes:
        return await asyncio.to_thread(entry.path.read_bytes)

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
        await asyncio.to_thread(_write_durably, path, header.encode() + body, append=True)
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
        with _private_file(tmp, append=False) as f:
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
