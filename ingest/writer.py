"""Shard-aware batched writes: split a frame by owning shard(s), write the shards in
parallel, each shard's batches in order.

A shard that cannot answer is retried with exponential backoff inside the tick; a
shard that refuses a batch (4xx: bad line, missing database) is not retried, since the
same bytes would be refused again. Both are reported per shard in :class:`WriteReport`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from federation.config import ShardMap
from federation.exceptions import ShardRejected, ShardUnavailable
from federation.influx import InfluxClient
from ingest.lineproto import batches, finite_rows, to_lines

log = logging.getLogger(__name__)


@dataclass
class WriteReport:
    written: dict[str, int] = field(default_factory=dict)  # points stored, per shard
    failed: dict[str, int] = field(default_factory=dict)  # points not stored, per shard
    errors: dict[str, str] = field(default_factory=dict)  # why, per shard
    invalid_rows: int = 0  # rows refused before writing (price not finite and positive)

    @property
    def points(self) -> int:
        return sum(self.written.values())

    def merge(self, other: WriteReport) -> None:
        for name, count in other.written.items():
            self.written[name] = self.written.get(name, 0) + count
        for name, count in other.failed.items():
            self.failed[name] = self.failed.get(name, 0) + count
        self.errors.update(other.errors)
        self.invalid_rows += other.invalid_rows


class ShardWriter:
    def __init__(
        self,
        shard_map: ShardMap,
        clients: Mapping[str, InfluxClient],
        *,
        batch_lines: int = 5000,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.shard_map = shard_map
        self.clients = clients
        self.batch_lines = batch_lines
        self.retries = retries
        self.backoff_s = backoff_s

    def split(self, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """The rows each shard owns; with replication R every row goes to R shards."""
        pairs = frame["pair"]
        owners = {pair: self.shard_map.owners(pair) for pair in pairs.unique().tolist()}
        out: dict[str, pd.DataFrame] = {}
        for replica in range(self.shard_map.replication):
            owner = pairs.map({pair: names[replica] for pair, names in owners.items()})
            for name, part in frame.groupby(owner, sort=False):
                key = str(name)
                out[key] = part if key not in out else pd.concat([out[key], part])
        return out

    async def write(self, frame: pd.DataFrame) -> WriteReport:
        clean = finite_rows(frame)
        report = WriteReport(invalid_rows=len(frame) - len(clean))
        parts = self.split(clean)
        results = await asyncio.gather(
            *(self._write_shard(name, part) for name, part in parts.items())
        )
        for name, (done, failed, error) in zip(parts, results, strict=True):
            report.written[name] = done
            if error is not None:
                report.failed[name] = failed
                report.errors[name] = error
        return report

    async def _write_shard(self, name: str, part: pd.DataFrame) -> tuple[int, int, str | None]:
        """Points written, points not written, and why."""
        client = self.clients[name]
        lines = to_lines(part)
        bodies = batches(lines, self.batch_lines)
        done = 0
        for body in bodies:
            error = await self._write_body(client, body)
            if error is not None:
                return done, len(lines) - done, error
            done += body.count(b"\n")
        return done, 0, None

    async def _write_body(self, client: InfluxClient, body: bytes) -> str | None:
        for attempt in range(self.retries + 1):
            try:
                await client.write(body)
                return None
            except ShardRejected as exc:
                log.error("%s refused a batch; not retrying: %s", client.name, exc)
                return str(exc)
            except ShardUnavailable as exc:
                if attempt == self.retries:
                    return str(exc)
                delay = self.backoff_s * 2**attempt
                log.warning("%s: %s; retrying in %.1fs", client.name, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")
