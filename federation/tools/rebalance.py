"""Moving every pair to the shards that own it under the map in force.

A pair is *misplaced* on a shard that holds points of it but is not one of its owners
(the map gained a shard, or the shard is draining). For each, the rebalance copies the
pair's points to every owner in bounded time windows, verifies that per series the
count and the sum of ``price`` and ``volume`` are the same on both sides over the range
copied, and only then deletes that range from the old shard. A pair that an owner holds
fewer points of than another owner (replication was raised) is copied the same way,
and its source keeps it.

No journal is needed: the shards themselves say what is left to do. A point is unique
by (series, time) in InfluxDB, so copying it again overwrites it with itself, and a
delete follows a verified copy only. Killed anywhere and run again, the rebalance
finds the pairs still misplaced and finishes them: nothing lost, nothing doubled.
Points that reach the old shard after the verified range (an ingester still on the old
map) stay there and are moved by the next run.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from federation.core import influxql
from federation.core.errors import FederationError
from federation.core.influx import ShardClient
from federation.core.lineproto import batches, to_lines
from federation.core.shardmap import ShardMap

log = logging.getLogger(__name__)
KNOWN_FIELDS = {"price", "volume"}
HOUR_NS = 3_600_000_000_000


@dataclass(frozen=True)
class Move:
    pair: str
    source: str
    targets: tuple[str, ...]
    series: int
    points: int
    delete: bool = True  # False: the source is an owner too and keeps its copy


@dataclass
class Report:
    moved: list[Move] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # "pair@source" -> why

    @property
    def points(self) -> int:
        return sum(m.points for m in self.moved)


# Called at each step with (stage, move); tests raise in it to stop a run part way.
Checkpoint = Callable[[str, Move], None]


class Rebalancer:
    def __init__(
        self,
        shard_map: ShardMap,
        clients: Mapping[str, ShardClient],
        *,
        window_ns: int = 6 * HOUR_NS,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.shard_map = shard_map
        self.clients = clients
        self.window_ns = window_ns
        self._checkpoint = checkpoint or (lambda stage, move: None)

    async def plan(self) -> list[Move]:
        """Every pair held by a non-owner (moved, then deleted there), and every pair an
        owner holds fewer points of than another shard (copied: replication was raised);
        with series and points. Changes nothing."""
        query = influxql.pair_counts_query()
        answers = await asyncio.gather(*(c.query(query) for c in self.clients.values()))
        held: dict[str, dict[str, list[int]]] = {}  # pair -> shard -> points per series
        for name, answer in zip(self.clients, answers, strict=True):
            for series in answer[0]:
                pair = series["tags"]["pair"]
                held.setdefault(pair, {}).setdefault(name, []).append(int(series["values"][0][1]))
        moves = []
        for pair, holders in sorted(held.items()):
            owners = self.shard_map.owners(pair)
            for name in sorted(holders):
                if name not in owners:
                    moves.append(
                        Move(pair, name, tuple(owners), len(holders[name]), sum(holders[name]))
                    )
            if any(name not in owners for name in holders):
                continue  # the moves above copy to every owner
            best = max(owners, key=lambda o: sum(holders.get(o, [])))
            lacking = tuple(o for o in owners if sum(holders.get(o, [])) < sum(holders[best]))
            if lacking:
                moves.append(
                    Move(pair, best, lacking, len(holders[best]), sum(holders[best]), delete=False)
                )
        return moves

    async def check_fields(self) -> None:
        """Refuse to move data this code cannot copy whole (fields it does not know)."""
        query = influxql.field_keys_query()
        answers = await asyncio.gather(*(c.query(query) for c in self.clients.values()))
        for name, answer in zip(self.clients, answers, strict=True):
            fields = {row[0] for s in answer[0] for row in s["values"]}
            if fields - KNOWN_FIELDS:
                raise FederationError(
                    f"shard {name} has fields {sorted(fields - KNOWN_FIELDS)} that the rebalance "
                    f"does not copy (it knows {sorted(KNOWN_FIELDS)}); nothing was moved"
                )

    async def run(
        self, moves: Iterable[Move], progress: Callable[[Move], None] | None = None
    ) -> Report:
        await self.check_fields()
        report = Report()
        for move in moves:
            try:
                await self.move(move)
            except FederationError as exc:
                log.error("%s on %s not moved: %s", move.pair, move.source, exc)
                report.failed[f"{move.pair}@{move.source}"] = str(exc)
            else:
                report.moved.append(move)
            if progress is not None:
                progress(move)
        return report

    async def move(self, move: Move, attempts: int = 3) -> None:
        source = self.clients[move.source]
        targets = [self.clients[t] for t in move.targets]
        for _ in range(attempts):
            bounds = await self._bounds(source, move.pair)
            if bounds is None:
                return  # nothing left on the source (a previous run finished it)
            start, end = bounds
            for window in range(start, end + 1, self.window_ns):
                frame = await self._read(
                    source, move.pair, window, min(window + self.window_ns - 1, end)
                )
                body = batches(to_lines(frame), 5000)
                await asyncio.gather(*(self._write(t, body) for t in targets))
                self._checkpoint("window", move)
            self._checkpoint("copied", move)
            expected = await self._stats(source, move.pair, start, end)
            copies = [await self._stats(t, move.pair, start, end) for t in targets]
            if all(_same(expected, copy) for copy in copies):
                self._checkpoint("verified", move)
                if move.delete:
                    await source.execute(influxql.delete_pair_range(move.pair, start, end))
                    self._checkpoint("deleted", move)
                return
            log.warning("%s: copy of %s does not match yet; copying again", move.source, move.pair)
        raise FederationError(f"the copies never matched the source after {attempts} tries")

    async def _bounds(self, client: ShardClient, pair: str) -> tuple[int, int] | None:
        answer = await client.query(influxql.pair_bounds_query(pair), epoch="ns")
        if not answer[0] or not answer[1]:
            return None
        return int(answer[0][0]["values"][0][0]), int(answer[1][0]["values"][0][0])

    async def _read(self, client: ShardClient, pair: str, start: int, end: int) -> pd.DataFrame:
        answer = await client.query(influxql.pair_points_query(pair, start, end), epoch="ns")
        columns = ["time", "price", "volume", "exchange"]
        values = [v for s in answer[0] for v in s["values"]]
        frame = pd.DataFrame(values, columns=columns).assign(pair=pair)
        frame["volume"] = frame["volume"].astype("float64")
        return frame

    @staticmethod
    async def _write(client: ShardClient, bodies: list[bytes]) -> None:
        for body in bodies:
            await client.write(body, precision="ns")

    async def _stats(
        self, client: ShardClient, pair: str, start: int, end: int
    ) -> dict[str, tuple[float, ...]]:
        answer = await client.query(influxql.pair_stats_query(pair, start, end))
        return {
            s["tags"]["exchange"]: tuple(float(x or 0) for x in s["values"][0][1:])
            for s in answer[0]
        }


def _same(a: Mapping[str, tuple[float, ...]], b: Mapping[str, tuple[float, ...]]) -> bool:
    # Sums may differ in the last bits: the shards add the same numbers in other orders.
    return a.keys() == b.keys() and all(
        math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-9)
        for key in a
        for x, y in zip(a[key], b[key], strict=True)
    )


def format_plan(moves: list[Move], shard_map: ShardMap) -> str:
    """The plan as an operator reads it: what moves where, and what each shard gains or loses."""
    if not moves:
        return f"map {shard_map.version}: every pair is on its owners; nothing to move."
    width = max(len(m.pair) for m in moves)
    lines = [
        f"map {shard_map.version}: {len(moves)} misplaced pairs, "
        f"{sum(m.points for m in moves):,} points to move",
        "",
    ]
    lines += [
        f"  {m.pair:<{width}}  {m.source} -> {', '.join(m.targets)}  "
        f"({m.series} series, {m.points:,} points)"
        for m in moves
    ]
    lines.append("")
    for shard in shard_map.shards:
        out = [m for m in moves if m.source == shard.name]
        into = [m for m in moves if shard.name in m.targets]
        if out or into:
            lines.append(
                f"  {shard.name}: gives {len(out)} pairs "
                f"({sum(m.points for m in out):,} points), receives {len(into)} pairs "
                f"({sum(m.points for m in into):,} points)"
            )
        if shard.drain:
            lines.append(
                f"  {shard.name} is draining: once the rebalance is done it holds "
                "nothing, and its entry can leave shards.yaml"
            )
    return "\n".join(lines)
