"""One pair's prices from every shard, merged as they arrive.

Each shard answers ``chunked=true``, a chunk at a time, in time order. The merge keeps
only what it cannot emit yet: a row is final once every shard still answering has sent
a row at a later time, so rows leave in batches, time-ordered, with one row per
(time, exchange) however many shards sent it. Memory is a few chunks per shard, not
the answer. A shard that fails or passes the deadline mid-way is closed and named in
``missing``; what it sent before stays in the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Mapping

import numpy as np

from federation.core.errors import ShardError
from federation.core.influx import ShardClient
from federation.core.influxql import Statement
from federation.router.rows import PriceRows, rows_of_chunk

log = logging.getLogger(__name__)


async def _shard_rows(
    client: ShardClient, statement: Statement, chunk_size: int
) -> AsyncGenerator[PriceRows, None]:
    # aclosing: when this generator is closed, the shard's stream is closed with it, at
    # once (an abandoned ``async for`` would leave it to the garbage collector).
    answer = client.query_packed(statement, chunk_size=chunk_size)
    async with contextlib.aclosing(answer) as chunks:
        async for chunk in chunks:
            rows = rows_of_chunk(client.name, chunk)
            if rows:
                yield rows


# Points a shard sends a chunk. Each chunk costs the router ~0.1-0.4 ms whatever its
# size; 5,000 costs 2-3 ms less CPU an answer than 2,000 at the same p50
# (docs/benchmarks.md, step 10), and holds ~0.4 MB a stream.
CHUNK_SIZE = 5_000


class MergedPrices:
    def __init__(
        self,
        clients: Mapping[str, ShardClient],
        statement: Statement,
        *,
        shard_timeout: float,
        deadline_s: float,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self._sources = {
            name: _shard_rows(client, statement, chunk_size) for name, client in clients.items()
        }
        self._buffers = {name: PriceRows() for name in clients}
        self._active = set(clients)
        self._shard_timeout = shard_timeout
        self._deadline_s = deadline_s
        self._deadline = time.monotonic() + deadline_s
        self.missing: dict[str, str] = {}

    async def _fill(self, name: str) -> None:
        """One more chunk from ``name``, or mark it finished or missing."""
        timeout = min(self._shard_timeout, self._deadline - time.monotonic())
        try:
            async with asyncio.timeout(max(timeout, 0)):
                chunk = await anext(self._sources[name])
        except StopAsyncIteration:
            self._active.discard(name)
            return
        except (ShardError, TimeoutError) as exc:
            reason = str(exc) or (
                f"no answer within {timeout:.1f}s"
                if timeout > 0
                else f"the answer's deadline ({self._deadline_s:g}s) passed"
            )
            log.debug("shard %s missing from a price stream: %s", name, reason)
            self.missing[name] = reason
            self._active.discard(name)
            await self._close(name)
            return
        self._buffers[name].extend(chunk)

    async def batches(self) -> AsyncGenerator[PriceRows, None]:
        """Time-ordered, de-duplicated rows, a batch at a time."""
        try:
            await asyncio.gather(*(self._fill(n) for n in list(self._active)))
            while True:
                for name in [n for n in self._active if not self._buffers[n]]:
                    await self._fill(name)
                if not self._active:
                    batch = self._take(None)
                    if batch:
                        yield batch
                    return
                # No shard still answering can send a row earlier than this time.
                frontier = min(self._buffers[n].times[-1] for n in self._active)
                batch = self._take(frontier)
                if batch:
                    yield batch
                laggard = min(self._active, key=lambda n: self._buffers[n].times[-1])
                await self._fill(laggard)
        finally:
            await self.aclose()

    def _take(self, before: int | None) -> PriceRows:
        runs: list[PriceRows] = []
        for buffer in self._buffers.values():
            cut = len(buffer) if before is None else int(np.searchsorted(buffer.times, before))
            if cut:
                runs.append(buffer.take(cut))
        # One run (one shard holds the pair) comes ordered and unique as InfluxDB sends
        # it, as each chunk was checked when read; only rows of several shards (replicas,
        # or a move in progress) are sorted and made unique.
        return PriceRows.merged(runs)

    async def _close(self, name: str) -> None:
        with contextlib.suppress(Exception):
            await self._sources[name].aclose()

    async def aclose(self) -> None:
        for name in self._sources:
            await self._close(name)
