"""One statement of ``/query`` run across the shards: the fan-out through
:class:`~federation.router.fanout.Federation`, and the answer as one unsharded InfluxDB
would give it (series with times in nanoseconds; the endpoint renders them).

- SHOW statements go to every shard; their rows are merged, deduplicated and sorted
  (here).
- ``CREATE DATABASE`` of the federation's database goes to every shard (here).
- A SELECT is checked here, then answered from raw points (:mod:`.raw`) or from
  per-shard partials (:mod:`.aggregate`), each series read from one copy
  (:mod:`.copies`: what is sent, and which shard's copy counts).

A WHERE that pins the placement key sends the statement only to its owners. A shard
that does not answer makes the statement an error naming it, unless the replicas that
did answer hold every copy it could hide.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from federation.core import influxql
from federation.core.errors import QueryError
from federation.core.influx import ShardClient
from federation.core.influxql import Statement
from federation.core.influxql_ast import (
    Binary,
    Call,
    CreateDatabase,
    Expr,
    Refused,
    Select,
    Show,
)
from federation.core.influxql_ast import Statement as Tree
from federation.core.types import Series
from federation.router.fanout import Federation
from federation.router.frontdoor.aggregate import aggregate, combinable
from federation.router.frontdoor.budget import RowBudget
from federation.router.frontdoor.conditions import TimeError, fix_times
from federation.router.frontdoor.copies import Plan, one_copy, plan
from federation.router.frontdoor.raw import computable, raw, raw_aggregate
from federation.router.frontdoor.rawcalc import POINT_SELECTORS
from federation.router.frontdoor.series import Result, StatementError, page


def error(message: str) -> Result:
    return {"error": message}


class Runner:
    """Runs the statements of one request against the federation's shards."""

    def __init__(
        self, federation: Federation, database: str | None, now_ns: int, max_rows: int
    ) -> None:
        self.federation = federation
        self.max_rows = max_rows
        self.database = database
        self.now_ns = now_ns

    async def run(self, tree: Tree) -> Result:
        try:
            if isinstance(tree, Refused) and tree.what.startswith("SHOW"):
                raise StatementError(f"{tree.what} is not served by the federation")
            if isinstance(tree, Refused):
                raise StatementError(
                    f"{tree.what} is not allowed through the federation: it would change"
                    " the data or schema of every shard"
                )
            if isinstance(tree, CreateDatabase):
                return await self.create_database(tree)
            if isinstance(tree, Show):
                return await self.show(tree)
            return await self.select(tree)
        except StatementError as exc:
            return error(str(exc))
        except TimeError as exc:
            return error(str(exc))

    def _check_database(self) -> None:
        ours = self.federation.shard_map.database
        if not self.database:
            raise StatementError("database name required")
        if self.database != ours:
            raise StatementError(f"database not found: {self.database}")

    async def create_database(self, tree: CreateDatabase) -> Result:
        if tree.name != self.federation.shard_map.database:
            raise StatementError(
                f"creating database {tree.name} is not allowed through the federation: it"
                f" holds one database, {self.federation.shard_map.database}"
            )
        await self._fan_out(influxql.create_database(tree.name), None, execute=True)
        return {}

    async def _fan_out(
        self,
        statement: Statement,
        pairs: frozenset[str] | None,
        *,
        execute: bool = False,
        budget: RowBudget | None = None,
    ) -> dict[str, list[list[Series]]]:
        """Every answer of the shards asked (the pairs' owners when pinned), by shard;
        a statement error of a shard is the statement's error; missing shards too,
        unless every copy they could hide was answered by another."""
        shard_map = self.federation.shard_map
        names = None
        if pairs is not None:
            names = sorted({o for p in pairs for o in shard_map.owners(p)})

        async def call(client: ShardClient) -> list[list[Series]] | QueryError:
            try:
                if execute:
                    return await client.execute(statement)
                if budget is not None:
                    return [await budget.read(client, statement)]
                return await client.query(statement, epoch="ns")
            except QueryError as exc:
                return exc

        found = await self.federation.gather(call, names)
        for shard, answer in found.answers.items():
            if isinstance(answer, QueryError):
                raise StatementError(str(answer).removeprefix(f"shard {shard}: "))
        if found.missing:
            covered = (
                all(set(shard_map.owners(p)) - set(found.missing) for p in pairs)
                if pairs is not None
                else len(found.missing) < shard_map.replication
            )
            if not covered:
                names_why = ", ".join(sorted(found.missing))
                raise StatementError(
                    f"shards did not answer, the result would be incomplete: {names_why}"
                )
        return {s: a for s, a in found.answers.items() if not isinstance(a, QueryError)}

    # SHOW.

    async def show(self, tree: Show) -> Result:
        if tree.kind == "databases":
            name = self.federation.shard_map.database
            return {"series": [{"name": "databases", "columns": ["name"], "values": [[name]]}]}
        ours = self.federation.shard_map.database
        if tree.kind == "retention policies":
            if (tree.database or self.database) != ours:
                raise StatementError(f"database not found: {tree.database or self.database}")
        elif self.database and self.database != ours:
            return {}  # InfluxDB shows nothing of a database it does not have
        else:
            self._check_database()
        sent = dataclasses.replace(tree, limit=0, offset=0)
        answers = await self._fan_out(influxql.front_show(sent), None)
        merged: dict[str, tuple[list[str], set[tuple[Any, ...]]]] = {}
        for answer in answers.values():
            for series in answer[0] if answer else []:
                columns, rows = merged.setdefault(
                    series.get("name", ""), (series["columns"], set())
                )
                rows.update(tuple(v) for v in series["values"])
        out: list[Series] = []
        for name in sorted(merged):
            columns, rows = merged[name]
            values = sorted(rows, key=lambda r: tuple("" if v is None else str(v) for v in r))
            values = page(values, tree.limit, tree.offset)
            if values:
                shown: Series = {"columns": columns, "values": [list(v) for v in values]}
                out.append({"name": name, **shown} if name else shown)
        return {"series": out} if out else {}

    # SELECT.

    async def select(self, tree: Select) -> Result:
        self._check_database()
        if tree.into is not None:
            raise StatementError(
                "INTO is not allowed through the federation: it would write to every shard"
            )
        for source in tree.sources:
            if source.database not in {None, self.federation.shard_map.database}:
                raise StatementError(f"database not found: {source.database}")
        tree = dataclasses.replace(tree, condition=fix_times(tree.condition, self.now_ns))
        calls = [f.expr for f in tree.fields if isinstance(f.expr, Call)]
        if any(isinstance(f.expr, Binary) and _calls_in(f.expr) for f in tree.fields):
            # Each shard would apply the math to its own partial, not to the whole.
            raise StatementError(
                "math on aggregates is not supported through the federation: select the"
                " aggregate and compute in the client"
            )
        if not calls:
            return await raw(self, tree)
        if len(calls) == len(tree.fields) and all(combinable(c) for c in calls):
            return await aggregate(self, tree, calls)
        if len(calls) == len(tree.fields) and all(computable(c) for c in calls):
            return await raw_aggregate(self, tree, calls)
        if len(calls) < len(tree.fields) and not any(c.name in POINT_SELECTORS for c in calls):
            raise StatementError("mixing aggregate and non-aggregate queries is not supported")
        raise StatementError(
            "the federation answers COUNT, SUM, MEAN, STDDEV, MIN, MAX, FIRST, LAST, SPREAD,"
            " MEDIAN, MODE, DISTINCT and PERCENTILE of one field, without other fields"
        )

    def plan(self, tree: Select) -> Plan:
        return plan(tree, self.federation.shard_map)

    async def read(
        self,
        sent: tuple[Select, ...],
        keys: frozenset[str] | None,
        budget: RowBudget | None = None,
    ) -> list[list[Series]]:
        """The series of each of ``sent`` (one request to each shard asked), every
        series from one copy; with a ``budget`` (one statement), read a chunk at a time
        and refused with its message once spent."""
        statement = (
            influxql.front_select(sent[0]) if len(sent) == 1 else influxql.front_selects(sent)
        )
        answers = await self._fan_out(statement, keys, budget=budget)
        if budget is not None and budget.spent:
            raise StatementError(budget.message)
        shard_map = self.federation.shard_map
        return [
            one_copy({s: a[k] if len(a) > k else [] for s, a in answers.items()}, shard_map)
            for k in range(len(sent))
        ]


def _calls_in(expr: Expr) -> bool:
    if isinstance(expr, Call):
        return True
    return isinstance(expr, Binary) and (_calls_in(expr.lhs) or _calls_in(expr.rhs))
