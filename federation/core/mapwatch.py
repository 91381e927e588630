"""The live shard map: ``shards.yaml`` read again when it changes or on SIGHUP.

A new file is validated before anything uses it; a bad one is logged with the key and
the fix, and the map in force stays. A good one is handed to ``apply`` (the router
swaps its clients, the ingester its writer). The file is checked every few seconds by
its content, so an editor's save, a ``cp`` or a config-management rename all count.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from federation.core.clock import SYSTEM_CLOCK, Clock
from federation.core.errors import ConfigError
from federation.core.periodic import Periodic
from federation.core.shardmap import ShardMap, load_shard_map
from federation.core.timefmt import iso_time

log = logging.getLogger(__name__)


class MapWatcher:
    def __init__(
        self,
        path: str | Path,
        current: ShardMap,
        apply: Callable[[ShardMap], Awaitable[None]],
        *,
        interval_s: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = Path(path)
        self.current = current
        self.clock = clock
        self.loaded_at = clock.time()
        self.last_error: str | None = None
        self._apply = apply
        self._digest = self._read_digest()
        # A failure to apply a new map is logged; the map in force stays and the next
        # check tries again.
        self._checker = Periodic(
            lambda due_ms: self.check(),
            interval_s,
            name=f"shard map check of {self.path}",
            clock=clock,
        )

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    async def check(self) -> bool:
        """Load the file if it changed; True when a new map is now in force."""
        digest = self._read_digest()
        if digest is None or digest == self._digest:
            return False
        try:
            new = load_shard_map(self.path)
        except ConfigError as exc:
            self._digest = digest  # said once; said again when the file changes again
            self.last_error = str(exc)
            log.error(
                "%s changed but is not valid; keeping map %s:\n%s",
                self.path,
                self.current.version,
                exc,
            )
            return False
        self.last_error = None
        if new.version != self.current.version:
            await self._apply(new)  # if this raises, the next check tries again
        self._digest = digest
        if new.version == self.current.version:
            return False
        log.info(
            "shard map %s -> %s (%d shards, replication %d)",
            self.current.version,
            new.version,
            len(new.shards),
            new.replication,
        )
        self.current, self.loaded_at = new, self.clock.time()
        return True

    def status(self) -> dict[str, object]:
        return {
            "map_version": self.current.version,
            "config": str(self.path),
            "loaded_at": iso_time(round(self.loaded_at * 1000)),
            "last_reload_error": self.last_error,
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Check every ``interval_s`` seconds, and at once on SIGHUP, until ``stop``."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._checker.wake)
        try:
            await self._checker.run(stop)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
