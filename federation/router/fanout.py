"""The federation: one query fanned out to every shard in parallel, each with its own
timeout, and the answers combined.

A shard that fails or times out is reported as missing, never raised: the caller
decides whether the missing shards matter. They do for one pair's prices only when
every owner of the pair is missing, and for the rank when at least ``replication``
shards are (fewer cannot hide every copy of any series).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import orjson

from federation.core import influxql
from federation.core.credentials import Credentials
from federation.core.errors import NotFound, ShardError, ShardsUnavailable
from federation.core.influx import InfluxClient, clients_for, ensure_databases, parse_series_key
from federation.core.shardmap import ShardMap
from federation.core.types import Series
from federation.router.metrics import RouterMetrics
from federation.router.params import PairQuery
from federation.router.rank import rank_of, table_from_series
from federation.router.ranktable import RankTable
from federation.router.rows import Row, encode_points, iso_times
from federation.router.stream import MergedPrices

log = logging.getLogger(__name__)
T = TypeVar("T")


class PairAnswer:
    """The head of a pair's answer, known before the first byte is sent, and its prices,
    which stream; whether it is partial is known at the end and comes last."""

    def __init__(
        self,
        q: PairQuery,
        rank: tuple[int, int] | None,
        rank_as_of: int | None,
        rank_missing: set[str],
        owners: list[str],
        merged: MergedPrices,
        first: list[Row] | None,
        rest: AsyncGenerator[list[Row], None],
    ) -> None:
        self.head: dict[str, Any] = {
            "pair": q.pair,
            "rank": None if rank is None else f"{rank[0]}/{rank[1]}",
            "duration": str(q.duration),
        }
        if rank_as_of is not None:
            self.head["rank_as_of"] = iso_times([rank_as_of])[0]
        self._rank_missing = rank_missing
        self._owners = owners
        self._merged = merged
        self._pending: list[list[Row]] = [first] if first else []
        self._rest = rest

    def missing(self) -> list[str]:
        """Shards whose absence may have changed this answer (so far)."""
        missing = set(self._rank_missing)
        if all(name in self._merged.missing for name in self._owners):
            missing |= set(self._merged.missing)
        return sorted(missing)

    async def read_all(self) -> None:
        self._pending.extend([batch async for batch in self._rest])

    async def body(self) -> AsyncIterator[bytes]:
        head = orjson.dumps(self.head)
        yield head[:-1] + b',"prices":['
        separator = b""
        try:
            for batch in self._pending:
                yield separator + encode_points(batch)
                separator = b","
            async for batch in self._rest:
                yield separator + encode_points(batch)
                separator = b","
        finally:
            await self._merged.aclose()
        missing = self.missing()
        yield b"]," + orjson.dumps({"partial": bool(missing), "missing_shards": missing})[1:]


@dataclass
class Gathered(Generic[T]):
    answers: dict[str, T] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # shard name -> why


class Federation:
    def __init__(
        self,
        shard_map: ShardMap,
        http: httpx.AsyncClient,
        *,
        shard_timeout: float = 10.0,
        deadline_s: float = 30.0,
        metrics: RouterMetrics | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.shard_map = shard_map
        self.credentials = credentials or Credentials()
        self.shard_timeout = shard_timeout
        self.deadline_s = deadline_s
        self.ranks: RankTable | None = None  # set when the rank is precomputed
        self.metrics = metrics or RouterMetrics()
        self._http = http
        self.clients = self._clients_for(shard_map)

    def _clients_for(self, shard_map: ShardMap) -> dict[str, InfluxClient]:
        return clients_for(
            shard_map, self._http, credentials=self.credentials, timeout=self.shard_timeout
        )

    async def set_map(self, shard_map: ShardMap) -> None:
        """Use a new shard map from now on; a new shard gets the database first."""
        clients = self._clients_for(shard_map)
        await ensure_databases(
            {name: c for name, c in clients.items() if name not in self.clients},
            timeout_s=0,
            required=False,
        )
        self.shard_map, self.clients = shard_map, clients

    async def gather(
        self,
        call: Callable[[InfluxClient], Awaitable[T]],
        shards: Iterable[str] | None = None,
    ) -> Gathered[T]:
        names = list(self.clients) if shards is None else list(shards)
        results = await asyncio.gather(*(self._one(self.clients[n], call) for n in names))
        out: Gathered[T] = Gathered()
        for name, (ok, value) in zip(names, results, strict=True):
            if ok:
                out.answers[name] = value
            else:
                out.missing[name] = value
        return out

    async def _one(
        self, client: InfluxClient, call: Callable[[InfluxClient], Awaitable[T]]
    ) -> tuple[bool, Any]:
        started = time.perf_counter()
        try:
            # The client's own timeout covers each HTTP phase; this caps the whole call.
            value = await asyncio.wait_for(call(client), timeout=self.shard_timeout)
        except (ShardError, TimeoutError) as exc:
            reason = str(exc) or f"no answer within {self.shard_timeout}s"
            log.warning("shard %s missing from an answer: %s", client.name, reason)
            self.metrics.shard_failures.labels(client.name).inc()
            return False, reason
        self.metrics.shard_seconds.labels(client.name).observe(time.perf_counter() - started)
        return True, value

    def _query(self, q: str) -> Callable[[InfluxClient], Awaitable[list[list[Series]]]]:
        return lambda client: client.query(q)

    async def gather_answers(self, query: str) -> tuple[list[list[list[Series]]], set[str]]:
        """``query`` on every shard: the answers, and the names of the shards missing."""
        found = await self.gather(self._query(query))
        return list(found.answers.values()), set(found.missing)

    async def _rank(self, q: PairQuery) -> tuple[tuple[int, int] | None, int | None, set[str]]:
        """(rank, as-of time when precomputed, shards whose absence may change it)."""
        if self.ranks is not None and not self.ranks.tried.is_set():
            # The first table is being built: sharing it beats a full scan per request.
            # If it fails, the rank is computed per request until a refresh succeeds.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ranks.tried.wait(), self.deadline_s)
        snapshot = await self.ranks.snapshot(q.duration) if self.ranks else None
        if snapshot is None:
            answers, missing = await self.gather_answers(
                influxql.stddev_query(q.duration, q.exchange)
            )
            table, as_of = table_from_series(a[0] for a in answers), None
        else:
            table, as_of, missing = snapshot.table, snapshot.as_of, snapshot.missing
            if q.exchange is not None:
                table = table[table["exchange"].to_numpy() == q.exchange]
        if len(missing) < self.shard_map.replication:
            missing = set()  # every series still has a copy on a shard that answered
        return rank_of(table, q.pair), as_of, missing

    async def pair_answer(self, q: PairQuery) -> PairAnswer:
        """The ``GET /{pair}`` answer: rank now, prices streamed from every shard."""
        merged = MergedPrices(
            self.clients,
            influxql.prices_query(q.pair, q.duration, q.exchange),
            shard_timeout=self.shard_timeout,
            deadline_s=self.deadline_s,
        )
        batches = merged.batches()
        try:
            first, (rank, as_of, rank_missing) = await asyncio.gather(
                anext(batches, None), self._rank(q)
            )
            answer = PairAnswer(
                q, rank, as_of, rank_missing, self.shard_map.owners(q.pair), merged, first, batches
            )
            if first is None and rank is None and not answer.missing():
                await self._raise_if_unknown(q)
            if q.strict:
                await answer.read_all()
                if answer.missing():
                    raise ShardsUnavailable(
                        "shards did not answer and strict=true was asked",
                        missing_shards=answer.missing(),
                    )
        except BaseException:
            await batches.aclose()
            raise
        return answer

    async def _raise_if_unknown(self, q: PairQuery) -> None:
        """404 when no shard holds any series of the pair (on that exchange), at any time."""
        found = await self.gather(self._query(influxql.series_of_pair_query(q.pair, q.exchange)))
        if found.missing or any(answer[0] for answer in found.answers.values()):
            return
        if q.exchange is None:
            raise NotFound(f"pair {q.pair!r} is not known", parameter="pair")
        raise NotFound(
            f"pair {q.pair!r} is not known on exchange {q.exchange!r}", parameter="exchange"
        )

    async def pairs(self) -> dict[str, Any]:
        """Every known pair with the exchanges that quote it."""
        query = f"SHOW SERIES FROM {influxql.quote_ident(influxql.MEASUREMENT)}"
        found = await self.gather(self._query(query))
        exchanges: dict[str, set[str]] = {}
        for answer in found.answers.values():
            for series in answer[0]:
                for (key,) in series["values"]:
                    tags = parse_series_key(key)
                    if "pair" in tags and "exchange" in tags:
                        exchanges.setdefault(tags["pair"], set()).add(tags["exchange"])
        missing = sorted(found.missing)
        return {
            "count": len(exchanges),
            "pairs": [{"pair": p, "exchanges": sorted(exchanges[p])} for p in sorted(exchanges)],
            "partial": bool(missing),
            "missing_shards": missing,
        }

    async def shard_status(self) -> dict[str, Any]:
        """Each shard: up or down, latency, version, series and pairs held, misplaced pairs."""
        measurement = influxql.quote_ident(influxql.MEASUREMENT)
        census = (
            f"SHOW SERIES EXACT CARDINALITY FROM {measurement}; "
            f"SHOW TAG VALUES FROM {measurement} WITH KEY = {influxql.quote_ident('pair')}"
        )

        async def status(client: InfluxClient) -> dict[str, Any]:
            ping = await client.ping()
            answer = await client.query(census)
            series = sum(s["values"][0][0] for s in answer[0]) if answer[0] else 0
            pairs = [row[1] for s in answer[1] for row in s["values"]]
            misplaced = [p for p in pairs if client.name not in self.shard_map.owners(p)]
            return {
                "up": True,
                "latency_ms": round(ping.latency_s * 1000, 2),
                "influxdb_version": ping.version,
                "series": series,
                "pairs": len(pairs),
                "misplaced_pairs": len(misplaced),
                "misplaced_examples": sorted(misplaced)[:20],
            }

        found = await self.gather(status)
        shards = []
        for shard in self.shard_map.shards:
            entry: dict[str, Any] = {"name": shard.name, "url": shard.url, "drain": shard.drain}
            if shard.name in found.answers:
                entry.update(found.answers[shard.name])
            else:
                entry.update(up=False, error=found.missing[shard.name])
            shards.append(entry)
        return {
            "map_version": self.shard_map.version,
            "database": self.shard_map.database,
            "replication": self.shard_map.replication,
            "shards": shards,
        }

    async def ready(self) -> Gathered[object]:
        return await self.gather(lambda client: client.ping())
