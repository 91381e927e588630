"""Shard-aware batched writes: a frame's line protocol dealt out to its owning shard(s),
the shards written in parallel, each shard's batches in order; what a shard cannot take
goes to the spool.

Without a spool, a shard that cannot answer is retried with exponential backoff inside
the tick and what still fails is reported lost. With a spool (the ingester's default) a
batch is acknowledged only once the shard stored it (204) or it is fsynced in the
shard's queue on disk, and the tick never waits on a shard that is down:

- a write that fails as *unavailable* (down, timeout, 5xx) is not retried in the tick:
  that batch and the rest of the shard's batches go to its queue, and a drainer task
  replays the queue in order, with backoff, until the shard takes it again;
- while a shard's queue is not empty, its new batches are appended to the queue (not
  written directly), so the shard receives every batch in the order it was made;
- a batch *refused* (4xx: a bad line, a missing database) is never retried: it goes to
  the dead-letter file with the reason. A 404 first gets the database created (a new or
  wiped shard) and one more try; the drainer creates the database before it replays
  into a shard that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from federation.core.errors import ShardError, ShardRejected, ShardUnavailable
from federation.core.influx import ShardClient
from federation.core.lineproto import batches, finite_rows, to_lines
from federation.core.shardmap import ShardMap
from ingest.spool import Spool

log = logging.getLogger(__name__)


@dataclass
class WriteReport:
    written: dict[str, int] = field(default_factory=dict)  # points stored, per shard
    spooled: dict[str, int] = field(default_factory=dict)  # points queued on disk, per shard
    failed: dict[str, int] = field(default_factory=dict)  # points neither stored nor spooled
    errors: dict[str, str] = field(default_factory=dict)  # why, per shard
    invalid_rows: int = 0  # rows refused before writing (price not finite and positive)

    @property
    def points(self) -> int:
        return sum(self.written.values())

    def merge(self, other: WriteReport) -> None:
        for mine, theirs in (
            (self.written, other.written),
            (self.spooled, other.spooled),
            (self.failed, other.failed),
        ):
            for name, count in theirs.items():
                mine[name] = mine.get(name, 0) + count
        self.errors.update(other.errors)
        self.invalid_rows += other.invalid_rows


@dataclass
class _Failure:
    message: str
    retryable: bool


@dataclass
class _ShardResult:
    written: int = 0
    spooled: int = 0
    failed: int = 0
    error: str | None = None


class ShardWriter:
    def __init__(
        self,
        shard_map: ShardMap,
        clients: Mapping[str, ShardClient],
        *,
        spool: Spool | None = None,
        batch_lines: int = 5000,
        retries: int = 3,
        backoff_s: float = 0.5,
        drain_backoff_max_s: float = 30.0,
    ) -> None:
        self.shard_map = shard_map
        self.clients = clients
        self.spool = spool
        self.batch_lines = batch_lines
        self.retries = retries
        self.backoff_s = backoff_s
        self.drain_backoff_max_s = drain_backoff_max_s
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._index = {s.name: i for i, s in enumerate(shard_map.shards)}
        self._owners: dict[str, tuple[int, ...]] = {}  # pair -> owner indices, best first
        if spool is not None:
            spool.open_all([s.name for s in shard_map.shards])

    def set_map(self, shard_map: ShardMap, clients: Mapping[str, ShardClient]) -> None:
        """Write by a new map from the next frame on. Clients of shards that left it stay
        known, so batches still spooled for them keep draining."""
        self.clients = {**self.clients, **clients}
        self.shard_map = shard_map
        self._index = {s.name: i for i, s in enumerate(shard_map.shards)}
        self._owners = {}
        if self.spool is not None:
            self.spool.open_all([s.name for s in shard_map.shards])

    def _owner_rows(self, pairs: pd.Series) -> npt.NDArray[np.intp]:
        """Per row, the index (in the map) of each of its ``replication`` owners."""
        codes, uniques = pd.factorize(pairs)
        cache = self._owners
        if len(cache) > 1_000_000:  # pairs come and go; do not grow without bound
            cache.clear()
        table = []
        for pair in uniques.tolist():
            owners = cache.get(pair)
            if owners is None:
                owners = cache[pair] = tuple(self._index[n] for n in self.shard_map.owners(pair))
            table.append(owners)
        rows: npt.NDArray[np.intp] = np.array(table, dtype=np.intp).reshape(len(table), -1)
        return np.asarray(rows[codes], dtype=np.intp)

    def split_lines(self, frame: pd.DataFrame) -> dict[str, list[str]]:
        """The line protocol of the rows each shard owns (every row goes to its R owners).
        The frame is serialised once and the lines dealt out, not the frame split first."""
        lines = np.array(to_lines(frame), dtype=object)
        owners = self._owner_rows(frame["pair"])
        out: dict[str, list[str]] = {}
        names = [s.name for s in self.shard_map.shards]
        for replica in range(owners.shape[1]):
            column = owners[:, replica]
            for index in np.unique(column).tolist():
                out.setdefault(names[index], []).extend(lines[column == index].tolist())
        return out

    async def write(self, frame: pd.DataFrame) -> WriteReport:
        self.resume()
        clean = finite_rows(frame)
        report = WriteReport(invalid_rows=len(frame) - len(clean))
        if clean.empty:
            return report
        parts = self.split_lines(clean)
        results = await asyncio.gather(
            *(self._write_shard(name, lines) for name, lines in parts.items())
        )
        for name, result in zip(parts, results, strict=True):
            report.written[name] = result.written
            if result.spooled:
                report.spooled[name] = result.spooled
            if result.failed:
                report.failed[name] = result.failed
            if result.error is not None:
                report.errors[name] = result.error
        return report

    def pending(self, name: str) -> bool:
        """Whether the shard has batches waiting in its queue."""
        return self.spool is not None and self.spool.queue(name).depth > 0

    async def _write_shard(self, name: str, lines: list[str]) -> _ShardResult:
        client = self.clients[name]
        bodies = batches(lines, self.batch_lines)
        result = _ShardResult()
        if self.pending(name):
            return await self._spool(name, bodies, result, None)  # behind the queued ones
        for i, body in enumerate(bodies):
            failure = await self._post(client, body)
            if failure is None:
                result.written += body.count(b"\n")
            elif failure.retryable and self.spool is not None:
                return await self._spool(name, bodies[i:], result, failure.message)
            elif failure.retryable:
                result.failed += sum(b.count(b"\n") for b in bodies[i:])
                result.error = failure.message
                return result
            else:
                log.error("%s; not retrying that batch", failure.message)
                result.failed += body.count(b"\n")
                result.error = failure.message
                if self.spool is not None:
                    await self._dead_letter(name, body, failure.message)
        return result

    async def _spool(
        self, name: str, bodies: list[bytes], result: _ShardResult, failure: str | None
    ) -> _ShardResult:
        """Queue ``bodies``; ``failure`` is why the shard did not take them (None when
        they only wait behind batches already queued)."""
        assert self.spool is not None
        try:
            result.spooled += await self.spool.queue(name).append(bodies)
        except OSError as exc:
            result.failed += sum(b.count(b"\n") for b in bodies)
            result.error = f"{failure or 'queued'}; spooling failed too: {exc}"
            log.error("%s: cannot spool %d batches: %s", name, len(bodies), exc)
            return result
        if failure is not None:
            result.error = failure
            log.warning("%s; spooling %s's batches until it answers again", failure, name)
        self._start_drainer(name)
        return result

    async def _dead_letter(self, name: str, body: bytes, reason: str) -> None:
        assert self.spool is not None
        try:
            await self.spool.queue(name).dead_letter(body, reason)
        except OSError as exc:
            log.error("%s: cannot write the dead-letter file: %s", name, exc)

    async def _post(self, client: ShardClient, body: bytes) -> _Failure | None:
        """Write one body; with a spool, once (the drainer retries), else with retries."""
        retries = 0 if self.spool is not None else self.retries
        created = False
        attempt = 0
        while True:
            try:
                await client.write(body)
                return None
            except ShardRejected as exc:
                if exc.status == 404 and not created:
                    # A new or wiped shard: create the database, then try this batch again.
                    created = True
                    try:
                        await client.create_database()
                    except ShardError as create_exc:
                        return _Failure(str(create_exc), retryable=True)
                    continue
                return _Failure(str(exc), retryable=False)
            except ShardUnavailable as exc:
                if attempt >= retries:
                    return _Failure(str(exc), retryable=True)
                delay = self.backoff_s * 2**attempt
                attempt += 1
                log.warning("%s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    # The drainers: one task per shard whose queue is not empty.

    def resume(self) -> None:
        """Start a drainer for every queue that holds batches (spooled by an earlier run)."""
        if self.spool is None:
            return
        for name in self.clients:
            if self.pending(name):
                self._start_drainer(name)

    def _start_drainer(self, name: str) -> None:
        task = self._drainers.get(name)
        if task is None or task.done():
            self._drainers[name] = asyncio.create_task(self._drain(name), name=f"drain-{name}")

    async def _drain(self, name: str) -> None:
        assert self.spool is not None
        queue, client = self.spool.queue(name), self.clients[name]
        delay = self.backoff_s
        ready = False  # the database was created since the shard last failed
        recreated = -1  # the batch for which a 404 made us create the database again
        started, last_log = time.monotonic(), time.monotonic()
        done_batches = 0
        while (entry := queue.head()) is not None:
            queue.in_flight = entry
            try:
                if not ready:
                    await client.create_database()
                    ready = True
                body = await queue.read(entry)
                try:
                    await client.write(body)
                except ShardRejected as exc:
                    if exc.status == 404 and recreated != entry.seq:
                        recreated, ready = entry.seq, False  # dropped meanwhile: create it again
                        continue
                    await queue.dead_letter(body, str(exc), entry)
                    continue
                await queue.remove(entry)
            except ShardError as exc:
                queue.last_error = str(exc)
                ready = False
                queue.in_flight = None
                await queue.enforce_caps()
                queue.write_status()
                log.info("%s; spool of %s: next try in %.1fs", exc, name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.drain_backoff_max_s)
                continue
            except OSError as exc:
                log.error("spool %s: cannot read batch %s, skipping it: %s", name, entry.path, exc)
                await queue.remove(entry, replayed=False)
                continue
            finally:
                queue.in_flight = None
            done_batches += 1
            delay = self.backoff_s
            if time.monotonic() - last_log > 5:
                last_log = time.monotonic()
                total = done_batches + queue.depth
                log.info(
                    "spool %s: replaying, %d of %d batches done (%.0f%%), %d points left",
                    name,
                    done_batches,
                    total,
                    100 * done_batches / max(total, 1),
                    queue.points,
                )
                queue.write_status()
        queue.last_error = None
        queue.write_status()
        if done_batches:
            log.info(
                "spool %s: drained, %d batches replayed in %.1fs",
                name,
                done_batches,
                time.monotonic() - started,
            )

    async def wait_drained(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for every queue to empty; whether they all did."""
        self.resume()
        deadline = time.monotonic() + timeout_s
        while any(not t.done() for t in self._drainers.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.wait(
                [t for t in self._drainers.values() if not t.done()], timeout=remaining
            )
        return not any(self.pending(name) for name in self.clients)

    async def close(self) -> None:
        """Stop the drainers; what they did not replay stays on disk for the next run."""
        tasks = [t for t in self._drainers.values() if not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._drainers.clear()
        if self.spool is not None:
            self.spool.write_status()
