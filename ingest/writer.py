"""Shard-aware batched writes: a frame's line protocol dealt out to its owning shard(s),
the shards written in parallel, each shard's batches in order; what a shard cannot take
goes to the spool.

Without a spool, a shard that cannot take a write is retried with exponential backoff
inside the tick and what still fails is reported lost. With a spool (the ingester's
default) a batch is acknowledged only once the shard stored it (204) or it is fsynced in
the shard's queue on disk, and the tick never waits on a shard that is down:

- a write that fails for a reason that can pass (down, timeout, 5xx, and 401, 403, 429:
  credentials being fixed, a rate limit) is not retried in the tick: that batch and the
  rest of the shard's batches go to its queue, and a drainer task replays the queue in
  order, with backoff, until the shard takes it again;
- while a shard's queue is not empty, its new batches are appended to the queue (not
  written directly), so the shard receives every batch in the order it was made;
- a batch *refused for good* (400: malformed line protocol, a partial write; 413) is
  never retried: it goes to the dead-letter file with the reason. A 404 first gets the
  database created (a new or wiped shard) and one more try; the drainer creates the
  database before it replays into a shard that failed;
- the drainer sends the lines of pairs the shard no longer owns (the map changed since
  they were spooled) to the pairs' current owners instead, so a rebalance does not have
  to move them again.

The ingester deals frames (:meth:`ShardWriter.write`); the router's ``/write`` deals
lines it has already placed (:meth:`ShardWriter.write_lines`), with its own
``precision`` (nanoseconds) and ``placement`` (the placement key of each spooled line).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from federation.core.errors import ShardError, ShardRejected, ShardUnavailable
from federation.core.influx import ShardClient
from federation.core.lineproto import batches, finite_rows, pairs_of, to_lines
from federation.core.shardmap import ShardMap
from ingest.spool import Entry, ShardQueue, Spool

log = logging.getLogger(__name__)

# Answers that the same body can never turn into a success: malformed line protocol or
# a partial write (400), a body over the server's limit (413). Any other refusal (401,
# 403, 429, ...) can pass once credentials or limits change, so it is retried.
FINAL_STATUSES = frozenset({400, 413})


def is_final(exc: ShardRejected) -> bool:
    return exc.status in FINAL_STATUSES


class _Retry(Exception):
    """The drainer's head batch cannot go on now (a re-dealt part found no home, the
    dead-letter file cannot be written); it stays at the head and is tried again."""


@dataclass
class WriteReport:
    written: dict[str, int] = field(default_factory=dict)  # points stored, per shard
    spooled: dict[str, int] = field(default_factory=dict)  # points queued on disk, per shard
    failed: dict[str, int] = field(default_factory=dict)  # points neither stored nor spooled
    lost: dict[str, int] = field(default_factory=dict)  # of those, not dead-lettered either
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
            (self.lost, other.lost),
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
    failed: int = 0  # dead-lettered or lost
    lost: int = 0  # neither stored, spooled nor dead-lettered
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
        precision: str = "ms",
        placement: Callable[[bytes], list[str]] = pairs_of,
    ) -> None:
        """``precision`` is that of every line this writer deals and spools; ``placement``
        gives the placement key of every line of a spooled body (a line without one
        keeps its batch on the shard it was spooled for)."""
        self.shard_map = shard_map
        self.precision = precision
        self.placement = placement
        self.clients = clients
        self.spool = spool
        self.batch_lines = batch_lines
        self.retries = retries
        self.backoff_s = backoff_s
        self.drain_backoff_max_s = drain_backoff_max_s
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._index = {s.name: i for i, s in enumerate(shard_map.shards)}
        self._owners: dict[str, tuple[int, ...]] = {}  # pair -> owner indices, best first
        self._generation = 0  # bumped by every map change; batches remember the one that dealt them
        if spool is not None:
            spool.open_all([s.name for s in shard_map.shards])

    def set_map(self, shard_map: ShardMap, clients: Mapping[str, ShardClient]) -> None:
        """Write by a new map from the next frame on. Clients of shards that left it stay
        known, so batches still spooled for them keep draining."""
        self.clients = {**self.clients, **clients}
        self.shard_map = shard_map
        self._index = {s.name: i for i, s in enumerate(shard_map.shards)}
        self._owners = {}
        self._generation += 1
        if self.spool is not None:
            self.spool.open_all([s.name for s in shard_map.shards])

    def owner_rows(self, pairs: pd.Series) -> npt.NDArray[np.intp]:
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
        owners = self.owner_rows(frame["pair"])
        out: dict[str, list[str]] = {}
        names = [s.name for s in self.shard_map.shards]
        for replica in range(owners.shape[1]):
            column = owners[:, replica]
            for index in np.unique(column).tolist():
                out.setdefault(names[index], []).extend(lines[column == index].tolist())
        return out

    async def write(
        self, frame: pd.DataFrame, extra: Mapping[str, list[str]] | None = None
    ) -> WriteReport:
        """Write the frame's prices to their owners; ``extra`` lines (by shard) go in the
        same writes, after them (the minute rollup's tick rows)."""
        self.resume()
        clean = finite_rows(frame)
        report = WriteReport(invalid_rows=len(frame) - len(clean))
        parts = self.split_lines(clean) if not clean.empty else {}
        for name, lines in (extra or {}).items():
            parts.setdefault(name, []).extend(lines)
        if parts:
            report.merge(await self.write_lines(parts))
        return report

    async def write_lines(self, parts: Mapping[str, list[str]]) -> WriteReport:
        """Write lines already dealt to their shards (by name), each shard's in order,
        the shards in parallel; acknowledged once stored or spooled, as :meth:`write`."""
        self.resume()
        report = WriteReport()
        generation = self._generation
        results = await asyncio.gather(
            *(self._write_shard(name, lines, generation) for name, lines in parts.items())
        )
        for name, result in zip(parts, results, strict=True):
            report.written[name] = result.written
            if result.spooled:
                report.spooled[name] = result.spooled
            if result.failed:
                report.failed[name] = result.failed
            if result.lost:
                report.lost[name] = result.lost
            if result.error is not None:
                report.errors[name] = result.error
        return report

    def pending(self, name: str) -> bool:
        """Whether the shard has batches waiting in its queue."""
        return self.spool is not None and self.spool.queue(name).depth > 0

    async def _write_shard(self, name: str, lines: list[str], generation: int) -> _ShardResult:
        """Write ``lines`` (dealt by the map of ``generation``) to shard ``name``."""
        client = self.clients[name]
        bodies = batches(lines, self.batch_lines)
        result = _ShardResult()
        if self.pending(name):
            return await self._spool(name, bodies, result, None, generation)  # behind the queue
        for i, body in enumerate(bodies):
            failure = await self._post(client, body)
            if failure is None:
                result.written += body.count(b"\n")
            elif failure.retryable and self.spool is not None:
                return await self._spool(name, bodies[i:], result, failure.message, generation)
            elif failure.retryable:
                result.failed += sum(b.count(b"\n") for b in bodies[i:])
                result.lost = result.failed
                result.error = failure.message
                return result
            else:
                log.error("%s; not retrying that batch", failure.message)
                result.failed += body.count(b"\n")
                result.error = failure.message
                if self.spool is not None:
                    await self._dead_letter(name, body, failure.message, result)
        return result

    async def _spool(
        self,
        name: str,
        bodies: list[bytes],
        result: _ShardResult,
        failure: str | None,
        generation: int,
    ) -> _ShardResult:
        """Queue ``bodies``; ``failure`` is why the shard did not take them (None when
        they only wait behind batches already queued)."""
        assert self.spool is not None
        queue = self.spool.queue(name)
        done, error = await queue.append(bodies, generation)
        result.spooled += sum(b.count(b"\n") for b in bodies[:done])
        if done:
            self._start_drainer(name)
        if error is not None:
            lost = bodies[done:]
            points = sum(b.count(b"\n") for b in lost)
            result.failed += points
            result.lost += points
            result.error = f"{failure or 'queued'}; spooling failed too: {error}"
            queue.lose(lost, f"cannot spool: {error}")
            return result
        if failure is not None:
            result.error = failure
            log.warning("%s; spooling %s's batches until it answers again", failure, name)
        return result

    async def _dead_letter(self, name: str, body: bytes, reason: str, result: _ShardResult) -> None:
        assert self.spool is not None
        queue = self.spool.queue(name)
        try:
            await queue.dead_letter(body, reason)
        except OSError as exc:
            result.lost += body.count(b"\n")
            queue.lose([body], f"refused ({reason}) and the dead-letter file failed: {exc}")

    async def _post(self, client: ShardClient, body: bytes) -> _Failure | None:
        """Write one body; with a spool, once (the drainer retries), else with retries."""
        retries = 0 if self.spool is not None else self.retries
        created = False
        attempt = 0
        while True:
            try:
                await client.write(body, self.precision)
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
                if is_final(exc):
                    return _Failure(str(exc), retryable=False)
                failure: ShardError = exc
            except ShardUnavailable as exc:
                failure = exc
            if attempt >= retries:
                return _Failure(str(failure), retryable=True)
            delay = self.backoff_s * 2**attempt
            attempt += 1
            log.warning("%s; retrying in %.1fs", failure, delay)
            await asyncio.sleep(delay)

    def _moved_lines(self, name: str, body: bytes) -> tuple[bytes, dict[str, list[str]]]:
        """Split a batch spooled for ``name`` by the current map: the body of the lines
        it still owns, and the lines of pairs it no longer owns, by their owners now."""
        pairs = self.placement(body)
        owners = {p: self.shard_map.owners(p) for p in set(pairs)}
        if all(name in o for o in owners.values()):
            return body, {}  # the usual case, decided per distinct pair
        lines = body.decode().splitlines()
        keys: list[str | None] = list(pairs)
        if len(pairs) != len(lines):  # lines without a placement key (the rollup's)
            keys = [next(iter(self.placement(f"{line}\n".encode())), None) for line in lines]
        kept: list[str] = []
        moved: dict[str, list[str]] = {}
        for line, pair in zip(lines, keys, strict=True):
            if pair is None or name in owners[pair]:  # a line without one stays
                kept.append(line)
            else:
                for owner in owners[pair]:
                    moved.setdefault(owner, []).append(line)
        return ("\n".join(kept) + "\n").encode() if kept else b"", moved

    async def _reroute(
        self, queue: ShardQueue, entry: Entry, moved: dict[str, list[str]], generation: int
    ) -> None:
        """Deal the lines of pairs that moved to their owners (written, or queued behind
        what those owners already wait for); raises :class:`_Retry` when some of them
        could be neither stored, queued nor dead-lettered."""
        results = [
            await self._write_shard(owner, lines, generation) for owner, lines in moved.items()
        ]
        if any(r.lost for r in results):
            raise _Retry(f"re-routing batch {entry.seq} failed: {results[0].error}")
        points = sum(len(lines) for lines in moved.values())
        queue.rerouted_batches += 1
        queue.rerouted_points += points
        log.info(
            "spool %s: batch %d: %d points of pairs it no longer owns sent to %s",
            queue.name,
            entry.seq,
            points,
            ", ".join(sorted(moved)),
        )

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
        queue = self.spool.queue(name)
        delay = self.backoff_s
        ready = False  # the database was created since the shard last failed
        recreated = -1  # the batch for which a 404 made us create the database again
        rerouted = (-1, -1)  # (batch, map generation) whose moved lines were dealt out
        started, last_log = time.monotonic(), time.monotonic()
        done_batches = 0
        while (entry := queue.head()) is not None:
            queue.in_flight = entry
            try:
                try:
                    body = await queue.read(entry)
                except FileNotFoundError as exc:
                    await queue.forget(entry, f"its file is gone: {exc}")
                    continue
                except OSError as exc:
                    raise _Retry(f"cannot read batch {entry.path}: {exc}") from exc
                generation = self._generation
                moved: dict[str, list[str]] = {}
                if entry.dealt_by != generation:  # spooled under another map, or by another run
                    body, moved = self._moved_lines(name, body)
                if moved and rerouted != (entry.seq, generation):
                    await self._reroute(queue, entry, moved, generation)
                    rerouted = (entry.seq, generation)
                if body:
                    client = self.clients[name]
                    if not ready:
                        await client.create_database()
                        ready = True
                    try:
                        await client.write(body, self.precision)
                    except ShardRejected as exc:
                        if exc.status == 404 and recreated != entry.seq:
                            recreated, ready = entry.seq, False  # dropped: create it again
                            continue
                        if not is_final(exc):
                            raise
                        try:
                            await queue.dead_letter(body, str(exc), entry)
                        except OSError as dead_exc:
                            raise _Retry(
                                f"{exc}; the dead-letter file failed, keeping the batch: {dead_exc}"
                            ) from dead_exc
                        continue
                await queue.remove(entry)
            except (ShardError, _Retry) as exc:
                queue.last_error = str(exc)
                ready = ready and isinstance(exc, _Retry)
                queue.in_flight = None
                await queue.enforce_caps()
                queue.write_status()
                level = logging.ERROR if isinstance(exc, _Retry) else logging.INFO
                log.log(level, "%s; spool of %s: next try in %.1fs", exc, name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.drain_backoff_max_s)
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
