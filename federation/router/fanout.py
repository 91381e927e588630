"""The federation: one query fanned out to every shard in parallel, each with its own
timeout, and the answers combined.

A shard that fails or times out is reported as missing, never raised: the caller
decides whether the missing shards matter. They do for one pair's prices only when
every owner of the pair is missing, and for the rank when at least ``replication``
shards are (fewer cannot hide every copy of any series). Each shard's failure is logged
at DEBUG where it happens; an answer that ends partial is counted and logged once, as
one WARNING naming every shard it lacks and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from federation.core import influxql
from federation.core.errors import NotFound, ShardError, ShardsUnavailable
from federation.core.influx import Connect, ShardClient, ensure_databases, parse_series_key
from federation.core.influxql import Statement
from federation.core.shardmap import ShardMap
from federation.core.timefmt import iso_time
from federation.core.types import Series
from federation.router.answer import PairAnswer, answer_head, ended_partial, shards_and_why
from federation.router.hotcache import CachedAnswer, HotCache
from federation.router.metrics import RouterMetrics
from federation.router.params import PairQuery
from federation.router.rank import rank_of, table_from_series
from federation.router.ranktable import RankTable
from federation.router.stream import MergedPrices

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
        connect: Connect,
        *,
        shard_timeout: float = 10.0,
        deadline_s: float = 30.0,
        strict_max_rows: int = 100_000,
        metrics: RouterMetrics | None = None,
    ) -> None:
        self.shard_map = shard_map
        self.shard_timeout = shard_timeout
        self.deadline_s = deadline_s
        self.strict_max_rows = strict_max_rows
        self.ranks: RankTable | None = None  # set when the rank is precomputed
        self.hot: HotCache | None = None  # set when the hot cache is on
        self.metrics = metrics or RouterMetrics()
        self._connect = connect
        self.clients = self._clients_for(shard_map)

    def _clients_for(self, shard_map: ShardMap) -> dict[str, ShardClient]:
        return {s.name: self._connect(s, shard_map.database) for s in shard_map.shards}

    async def set_map(self, shard_map: ShardMap) -> None:
        """Use a new shard map from now on; a new shard gets the database first."""
        clients = self._clients_for(shard_map)
        await ensure_databases(
            {name: c for name, c in clients.items() if name not in self.clients},
            timeout_s=0,
            required=False,
        )
        self.shard_map, self.clients = shard_map, clients
        if self.hot is not None:
            self.hot.clear("the shard map changed")

    async def gather(
        self,
        call: Callable[[ShardClient], Awaitable[T]],
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
        self, client: ShardClient, call: Callable[[ShardClient], Awaitable[T]]
    ) -> tuple[bool, Any]:
        started = time.perf_counter()
        try:
            # The client's own timeout covers each HTTP phase; this caps the whole call.
            value = await asyncio.wait_for(call(client), timeout=self.shard_timeout)
        except (ShardError, TimeoutError) as exc:
            reason = str(exc) or f"no answer within {self.shard_timeout}s"
            log.debug("shard %s missing from an answer: %s", client.name, reason)
            self.metrics.shard_failures.labels(client.name).inc()
            return False, reason
        self.metrics.shard_seconds.labels(client.name).observe(time.perf_counter() - started)
        return True, value

    def _query(
        self, statement: Statement
    ) -> Callable[[ShardClient], Awaitable[list[list[Series]]]]:
        return lambda client: client.query(statement)

    async def gather_answers(
        self, statement: Statement
    ) -> tuple[list[list[list[Series]]], set[str]]:
        """``statement`` on every shard: the answers, and the names of the shards missing."""
        found = await self.gather(self._query(statement))
        return list(found.answers.values()), set(found.missing)

    async def gather_by_shard(
        self, statement: Statement
    ) -> tuple[dict[str, list[list[Series]]], set[str]]:
        """``statement`` on every shard: each answering shard's answer by name, and the
        names of the shards missing."""
        found = await self.gather(self._query(statement))
        return dict(found.answers), set(found.missing)

    async def _rank(
        self, q: PairQuery, precomputed: bool = True
    ) -> tuple[tuple[int, int] | None, int | None, dict[str, str]]:
        """(rank, as-of time when precomputed, shards whose absence may change it and why)."""
        ranks = self.ranks if precomputed else None
        if ranks is not None and not ranks.tried.is_set():
            # The first table is being built: sharing it beats a full scan per request.
            # If it fails, the rank is computed per request until a refresh succeeds.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ranks.tried.wait(), self.deadline_s)
        snapshot = await ranks.snapshot(q.duration) if ranks else None
        missing: dict[str, str]
        if snapshot is None:
            found = await self.gather(self._query(influxql.stddev_query(q.duration, q.exchange)))
            table, as_of = table_from_series(a[0] for a in found.answers.values()), None
            missing = found.missing
        else:
            table, as_of = snapshot.table, snapshot.as_of
            why = f"not in the rank table as of {iso_time(as_of)}"
            missing = dict.fromkeys(snapshot.missing, why)
            if q.exchange is not None:
                table = table[table["exchange"].to_numpy() == q.exchange]
        if len(missing) < self.shard_map.replication:
            missing = {}  # every series still has a copy on a shard that answered
        if snapshot is not None and q.exchange is None:
            return snapshot.rank(q.pair), as_of, missing
        return rank_of(table, q.pair), as_of, missing

    async def _rank_refreshed(
        self, q: PairQuery, asked_ms: int, deadline: float
    ) -> tuple[tuple[int, int] | None, int | None, dict[str, str]]:
        """The rank from a table as of ``asked_ms`` or later, for a pair with prices in
        the window that the held table lacks (its points came after the table was built).
        The refresh is shared with every request waiting; when it fails or does not end
        before the deadline, the rank is computed for this request alone."""
        assert self.ranks is not None
        try:
            await asyncio.wait_for(
                self.ranks.refreshed_since(asked_ms), max(0.0, deadline - time.monotonic())
            )
        except Exception as exc:  # the periodic refresh logs its own failures
            log.warning(
                "rank refresh for %s failed (%s): ranking it alone", q.pair, exc or "timeout"
            )
            return await self._rank(q, precomputed=False)
        return await self._rank(q)

    async def cached_answer(self, q: PairQuery) -> CachedAnswer | None:
        """The ``GET /{pair}`` answer from the hot cache, or None when it must go the
        uncached way: no cache, a longer window, a rank the table lacks or may lack
        (the uncached path refreshes it, or tells a 404, or a partial answer), no point
        in the window, or a strict answer over its rows."""
        hot = self.hot
        if hot is None or not hot.holds(q):
            return None
        rank, as_of, rank_missing = await self._rank(q)
        if rank is None or as_of is None or rank_missing:
            return None
        head = answer_head(q, rank, as_of)
        return await hot.answer(q, head, self.strict_max_rows if q.strict else None)

    async def pair_answer(self, q: PairQuery) -> PairAnswer:
        """The ``GET /{pair}`` answer: rank now, prices streamed from every shard."""
        deadline = time.monotonic() + self.deadline_s
        asked_ms = self.ranks.clock.now_ms() if self.ranks else 0
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
            if first is not None and rank is None and as_of is not None:
                # Prices in the window that the table lacks: never an answer without
                # their rank; a table as of this request has them.
                rank, as_of, rank_missing = await self._rank_refreshed(q, asked_ms, deadline)
            owners = self.shard_map.owners(q.pair)
            answer = PairAnswer(
                q, rank, as_of, rank_missing, owners, merged, first, batches, self.metrics
            )
            if first is None and rank is None and not answer.missing():
                await self._raise_if_unknown(q)
            if q.strict:
                await answer.read_all(self.strict_max_rows)
                missing = answer.missing()
                if missing:
                    log.warning(
                        "refused %s (strict=true): missing %s",
                        answer.request,
                        shards_and_why(missing),
                    )
                    raise ShardsUnavailable(
                        "shards did not answer and strict=true was asked",
                        missing_shards=sorted(missing),
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
        found = await self.gather(self._query(influxql.series_query()))
        exchanges: dict[str, set[str]] = {}
        for answer in found.answers.values():
            for series in answer[0]:
                for (key,) in series["values"]:
                    tags = parse_series_key(key)
                    if "pair" in tags and "exchange" in tags:
                        exchanges.setdefault(tags["pair"], set()).add(tags["exchange"])
        missing = sorted(found.missing)
        if missing:
            ended_partial(self.metrics, "GET /pairs", found.missing)
        return {
            "count": len(exchanges),
            "pairs": [{"pair": p, "exchanges": sorted(exchanges[p])} for p in sorted(exchanges)],
            "partial": bool(missing),
            "missing_shards": missing,
        }

    async def shard_status(self) -> dict[str, Any]:
        """Each shard: up or down, latency, version, series and pairs held, misplaced pairs."""

        async def status(client: ShardClient) -> dict[str, Any]:
            ping = await client.ping()
            keys = [
                row[0]
                for s in (await client.query(influxql.census_query()))[0]
                for row in s["values"]
            ]
            pairs = sorted({parse_series_key(key).get("pair", "") for key in keys} - {""})
            series = len(keys)
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
