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
Right before deleting, the source's counts and sums over the range are read again: a
point that reached it after the copy was verified (a spool still draining into the old
owner, a source whose times lag) makes the round copy again instead of being deleted
with the range. Rounds go on until the source holds no point of the pair; then its
series are dropped there too, since InfluxDB 1.x keeps series whose points were deleted
in its index (where ``/shards``, ``/pairs`` and the router's 404 look). The residue: a
point written in the instant between that last read and the DELETE (or between the
source found empty and the DROP) is still lost; the window is one round trip, not the
length of the copy. Points that keep arriving after a few rounds (an ingester still on
the old map) stay there and are moved by the next run.
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
from federation.core.influx import ShardClient, parse_series_key
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
        # A pair only in a non-owner's index (its points deleted by a run killed before
        # it dropped the series) is a move of no point: its series are dropped there.
        census = influxql.census_query()
        indexes = await asyncio.gather(*(c.query(census) for c in self.clients.values()))
        for name, answer in zip(self.clients, indexes, strict=True):
            for key in (row[0] for s in answer[0] for row in s["values"]):
                if "pair" in (tags := parse_series_key(key)):
                    held.setdefault(tags["pair"], {}).setdefault(name, [])
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
            counts = holders.get(best, [])
            lacking = tuple(o for o in owners if sum(holders.get(o, [])) < sum(counts))
            if lacking:
                moves.append(Move(pair, best, lacking, len(counts), sum(counts), delete=False))
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
        self,
        moves: Iterable[Move],
        progress: Callable[[Move], None] | None = None,
        passes: int = 3,
    ) -> Report:
        """Make the moves, then plan again and move what reached a non-owner meanwhile
        (a spool draining into an old owner after its pair was moved), up to ``passes``."""
        await self.check_fields()
        report = Report()
        for _ in range(passes):
            for move in moves:
                where = f"{move.pair}@{move.source}"
                try:
                    await self.move(move)
                except FederationError as exc:
                    log.error("%s on %s not moved: %s", move.pair, move.source, exc)
                    report.failed[where] = str(exc)
                else:
                    report.moved.append(move)
                    report.failed.pop(where, None)
                if progress is not None:
                    progress(move)
            moves = [m for m in await self.plan() if m.delete]
            if not moves:
                break
        return report

    async def move(self, move: Move, attempts: int = 3, rounds: int = 5) -> None:
        """Copy, verify, and (for a misplaced pair) delete what was verified, in rounds
        until the source holds no point of the pair; then drop its series there, so the
        source's index forgets the pair. A round whose copies do not match is tried
        again, up to ``attempts`` times; points that keep arriving at the source after
        ``rounds`` rounds stay there for the next run."""
        source = self.clients[move.source]
        targets = [self.clients[t] for t in move.targets]
        failures = 0
        for _ in range(rounds):
            bounds = await self._bounds(source, move.pair)
            if bounds is None:
                break  # nothing (left) on the source
            start, end = bounds
            expected = await self._copy(source, targets, move, start, end)
            if expected is None:
                failures += 1
                if failures == attempts:
                    raise FederationError(
                        f"the copies never matched the source after {attempts} tries"
                    )
                log.warning(
                    "%s: copy of %s does not match yet; copying again", move.source, move.pair
                )
                continue
            self._checkpoint("verified", move)
            if not move.delete:
                return
            # A point that reached the source since the verification (a spool still
            # draining into the old owner, a lagging source) is in the range the DELETE
            # removes: read the source again first, and copy again when it moved.
            if not _same(expected, await self._stats(source, move.pair, start, end)):
                log.info("%s: %s got points during the copy; copying again", move.source, move.pair)
                continue
            await source.execute(influxql.delete_pair_range(move.pair, start, end))
            self._checkpoint("deleted", move)
        else:
            log.warning(
                "%s: points of %s kept arriving during %d rounds; the next run moves them",
                move.source,
                move.pair,
                rounds,
            )
            return
        if move.delete:
            await source.execute(influxql.drop_pair_series(move.pair))
            self._checkpoint("dropped", move)

    async def _copy(
        self, source: ShardClient, targets: list[ShardClient], move: Move, start: int, end: int
    ) -> dict[str, tuple[float, ...]] | None:
        """Copy [start, end] to every target: the source's per-series stats over the
        range when every copy matches them, else None."""
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
        return expected if all(_same(expected, copy) for copy in copies) else None

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
