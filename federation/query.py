"""The federation: one query fanned out to every shard in parallel, each with its own
timeout, and the answers combined.

A shard that fails or times out is reported as missing, never raised: the caller
decides whether the missing shards matter. They do for one pair's prices only when
every owner of the pair is missing, and for the rank when at least ``replication``
shards are (fewer cannot hide every copy of any series).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from federation import influxql
from federation.config import ShardMap
from federation.exceptions import NotFound, ShardError, ShardsUnavailable
from federation.influx import InfluxClient, parse_series_key
from federation.merge import merge_rows, rows_from_series, to_points
from federation.metrics import RouterMetrics
from federation.params import PairQuery
from federation.rank import rank_of, table_from_series
from federation.types import Series

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        metrics: RouterMetrics | None = None,
    ) -> None:
        self.shard_map = shard_map
        self.shard_timeout = shard_timeout
        self.metrics = metrics or RouterMetrics()
        self.clients = {
            s.name: InfluxClient(s, http, shard_map.database, timeout=shard_timeout)
            for s in shard_map.shards
        }

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

    async def pair_report(self, q: PairQuery) -> dict[str, Any]:
        """The ``GET /{pair}`` answer: rank, prices and which shards were missing."""
        prices, ranks = await asyncio.gather(
            self.gather(self._query(influxql.prices_query(q.pair, q.duration, q.exchange))),
            self.gather(self._query(influxql.stddev_query(q.duration, q.exchange))),
        )
        owners = self.shard_map.owners(q.pair)
        missing = set()
        if all(name in prices.missing for name in owners):
            missing |= set(prices.missing)
        if len(ranks.missing) >= self.shard_map.replication:
            missing |= set(ranks.missing)
        table = table_from_series(answer[0] for answer in ranks.answers.values())
        rank = rank_of(table, q.pair)
        rows = list(merge_rows(rows_from_series(a[0]) for a in prices.answers.values()))
        if rank is None and not rows and not missing:
            await self._raise_if_unknown(q)
        if missing:
            self.metrics.partial_answers.inc()
            if q.strict:
                raise ShardsUnavailable(
                    "shards did not answer and strict=true was asked",
                    missing_shards=sorted(missing),
                )
        return {
            "pair": q.pair,
            "rank": None if rank is None else f"{rank[0]}/{rank[1]}",
            "duration": str(q.duration),
            "prices": to_points(rows),
            "partial": bool(missing),
            "missing_shards": sorted(missing),
        }

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
            entry: dict[str, Any] = {"name": shard.name, "url": shard.url}
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
