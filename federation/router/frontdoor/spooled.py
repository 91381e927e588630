"""The writer behind ``/write``: the ingester's :class:`~ingest.writer.ShardWriter` on
a spool of the router's own (``FEDERATION_WRITE_SPOOL_DIR``), and its replay loop.

The spool is opened at the first write, or at start when its directory is already there
(batches left by an earlier run), so a router nobody writes to makes no directory. Its
lines carry nanosecond times (``/write`` rewrote them), which is why it is not the
ingester's spool, whose lines carry milliseconds. The replay runs on
:class:`~federation.core.periodic.Periodic`: each run starts a drainer for every queue
that holds batches (the writer starts one itself when it spools, so the loop only
matters for leftovers and for a drainer that ended with batches still queued).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from federation.core.clock import Clock
from federation.core.influx import ShardClient
from federation.core.periodic import Periodic
from federation.core.shardmap import ShardMap
from federation.router.frontdoor.lines import keys_of
from ingest.spool import Spool
from ingest.writer import ShardWriter

REPLAY_CHECK_S = 5.0


class SpooledWriter:
    def __init__(
        self,
        root: Path,
        shard_map: ShardMap,
        clients: Mapping[str, ShardClient],
        *,
        clock: Clock,
    ) -> None:
        self.root = root
        self.shard_map = shard_map
        self.clients = clients
        self._writer: ShardWriter | None = None
        self.replay = Periodic(
            self._replay, REPLAY_CHECK_S, name="write spool replay", immediate=True, clock=clock
        )

    @property
    def opened(self) -> bool:
        """Whether the spool is open (a write came, or an earlier run left batches)."""
        return self._writer is not None

    @property
    def writer(self) -> ShardWriter:
        """The writer, its spool opened on first use."""
        if self._writer is None:
            self._writer = ShardWriter(
                self.shard_map,
                self.clients,
                spool=Spool(self.root),
                precision="n",
                placement=self._keys,
            )
        return self._writer

    def _keys(self, body: bytes) -> list[str]:
        return keys_of(body, self.writer.shard_map.placement_tag)

    async def _replay(self, due_ms: int) -> None:
        if self._writer is None and self.root.is_dir():
            self.writer.resume()  # batches of an earlier run
        elif self._writer is not None:
            self._writer.resume()

    def set_map(self, shard_map: ShardMap, clients: Mapping[str, ShardClient]) -> None:
        self.shard_map, self.clients = shard_map, clients
        if self._writer is not None:
            self._writer.set_map(shard_map, clients)

    async def run(self, stop: asyncio.Event) -> None:
        """Replay until ``stop``; then stop the drainers (what is left stays on disk)."""
        try:
            await self.replay.run(stop)
        finally:
            if self._writer is not None:
                await self._writer.close()
