"""One statement of ``/query`` run across the shards: the plan (which shards, what each
is sent), the fan-out through :class:`~federation.router.fanout.Federation`, and the
answer as one unsharded InfluxDB would give it (series with times in nanoseconds; the
endpoint renders them).

- SHOW statements go to every shard; their rows are merged, deduplicated and sorted.
- A raw SELECT is sent with the placement key added to GROUP BY, LIMIT widened by the
  OFFSET; each pair's points come from one shard (replicas count once) and are merged
  in time order.
- An aggregate SELECT is split into partials (:mod:`.combine`) and combined.

A WHERE that pins ``pair`` sends the statement only to the pairs' owners. A shard that
does not answer makes the statement an error naming it, unless the replicas that did
answer hold every copy it could hide.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from federation.core import influxql
from federation.core.errors import QueryError
from federation.core.influx import ShardClient
from federation.core.influxql import Statement
from federation.core.influxql_ast import (
    Call,
    CreateDatabase,
    Field,
    IntegerLit,
    NumberLit,
    Refused,
    Select,
    Show,
    TimeDimension,
    VarRef,
    Wildcard,
)
from federation.core.influxql_ast import Statement as Tree
from federation.core.types import Series
from federation.router.fanout import Federation
from federation.router.frontdoor.combine import (
    COMBINABLE,
    MOMENTS,
    SELECTORS,
    Group,
    one_copy,
)
from federation.router.frontdoor.conditions import (
    TimeError,
    fix_times,
    pinned,
    time_range,
)
from federation.router.frontdoor.rawcalc import POINT_SELECTORS, RAW_ONLY, Point, compute
from federation.router.frontdoor.series import (
    Result,
    StatementError,
    page,
    result,
    series_of,
    shaped,
    window_of,
)

PLACEMENT_KEY = "pair"
# What each shard is asked per function combined from moments (the count always: it
# says whether a group had points).
PARTIALS = {
    "count": ("count",),
    "sum": ("count", "sum"),
    "mean": ("count", "sum"),
    "stddev": ("count", "mean", "stddev"),
}


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
        self, statement: Statement, pairs: frozenset[str] | None, *, execute: bool = False
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
        if not calls:
            return await self.raw(tree)
        if len(calls) == len(tree.fields) and all(
            c.name in COMBINABLE and _combinable(c) for c in calls
        ):
            return await self.aggregate(tree, calls)
        if len(calls) == len(tree.fields) and all(_computable(c) for c in calls):
            return await self.raw_aggregate(tree, calls)
        if len(calls) < len(tree.fields) and not any(c.name in POINT_SELECTORS for c in calls):
            raise StatementError("mixing aggregate and non-aggregate queries is not supported")
        raise StatementError(
            "the federation answers COUNT, SUM, MEAN, STDDEV, MIN, MAX, FIRST, LAST, SPREAD,"
            " MEDIAN, MODE, DISTINCT and PERCENTILE of one field, without other fields"
        )

    def _dimensions(self, tree: Select) -> tuple[tuple[Any, ...], bool]:
        """The dimensions sent: the client's plus the placement key, and whether it
        was added (so it is taken out of the answer)."""
        dims = tree.dimensions
        if any(isinstance(d, Wildcard) for d in dims) or any(
            isinstance(d, VarRef) and d.name == PLACEMENT_KEY for d in dims
        ):
            return dims, False
        return (*dims, VarRef(PLACEMENT_KEY)), True

    async def raw(self, tree: Select) -> Result:
        dims, added = self._dimensions(tree)
        sent = dataclasses.replace(
            tree,
            dimensions=dims,
            limit=tree.limit + tree.offset if tree.limit else 0,
            offset=0,
            slimit=0,
            soffset=0,
        )
        pairs = pinned(tree.condition, PLACEMENT_KEY)
        answers = await self._fan_out(influxql.front_select(sent), pairs)
        chosen = one_copy(
            {s: a[0] if a else [] for s, a in answers.items()},
            PLACEMENT_KEY,
            self._owners(),
        )
        star = any(isinstance(f.expr, Wildcard) for f in tree.fields)
        groups: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[list[str], list[Any]]] = {}
        for series in chosen:
            tags = dict(series.get("tags", {}))
            columns = list(series["columns"])
            values = series["values"]
            pair = tags.get(PLACEMENT_KEY, "")
            if added:
                tags.pop(PLACEMENT_KEY, None)
                if star and pair and PLACEMENT_KEY not in columns:
                    at = 1 + sum(c < PLACEMENT_KEY for c in columns[1:])
                    columns.insert(at, PLACEMENT_KEY)
                    values = [[*v[:at], pair, *v[at:]] for v in values]
            key = (series.get("name", ""), tuple(sorted(tags.items())))
            held = groups.setdefault(key, (columns, []))
            held[1].extend((v[0], pair, v) for v in values)
        out: list[Series] = []
        for (name, group_tags), (columns, rows) in sorted(groups.items(), reverse=tree.descending):
            rows.sort(key=lambda r: (r[0], r[1]), reverse=tree.descending)
            values = page([r[2] for r in rows], tree.limit, tree.offset)
            if values:
                out.append(series_of(name, group_tags, tree, columns, values))
        return result(page(out, tree.slimit, tree.soffset))

    def _owners(self) -> Callable[[str], tuple[str, ...]]:
        return lambda pair: tuple(self.federation.shard_map.owners(pair))

    async def aggregate(self, tree: Select, calls: list[Call]) -> Result:
        dims, added = self._dimensions(tree)
        base = dataclasses.replace(
            tree,
            dimensions=dims,
            fill="none",
            fill_value=None,
            descending=False,
            limit=0,
            offset=0,
            slimit=0,
            soffset=0,
        )
        fields = list(dict.fromkeys(_field(c) for c in calls if c.name in MOMENTS))
        moments = [
            Field(Call(func, (VarRef(f),)), f"{func}_{i}")
            for i, f in enumerate(fields)
            for func in MOMENTS
            if func in {n for c in calls if _field(c) == f for n in PARTIALS.get(c.name, ())}
        ]
        selectors = list(
            dict.fromkeys(
                (func, _field(c))
                for c in calls
                for func in (("min", "max") if c.name == "spread" else (c.name,))
                if func in SELECTORS
            )
        )
        selects = [
            dataclasses.replace(base, fields=(f,))
            for f in (Field(Call(func, (VarRef(f),)), "value") for func, f in selectors)
        ]
        if moments:
            selects.insert(0, dataclasses.replace(base, fields=tuple(moments)))
        pairs = pinned(tree.condition, PLACEMENT_KEY)
        answers = await self._fan_out(influxql.front_selects(tuple(selects)), pairs)
        names = [c.name for c in calls]
        groups: dict[tuple[str, tuple[tuple[str, str], ...]], Group] = {}
        for k in range(len(selects)):
            chosen = one_copy(
                {s: a[k] if len(a) > k else [] for s, a in answers.items()},
                PLACEMENT_KEY,
                self._owners(),
            )
            for series in chosen:
                tags = dict(series.get("tags", {}))
                if added:
                    tags.pop(PLACEMENT_KEY, None)
                group = groups.setdefault(
                    (series.get("name", ""), tuple(sorted(tags.items()))), Group(names)
                )
                columns = series["columns"]
                for row in series["values"]:
                    accumulators = group.row(row[0])
                    cells = dict(zip(columns, row, strict=True))
                    for i, c in enumerate(calls):
                        field_name = _field(c)
                        if k == 0 and moments and c.name in MOMENTS:
                            j = fields.index(field_name)
                            accumulators[i].add_moments(
                                cells[f"count_{j}"] or 0,
                                cells.get(f"sum_{j}"),
                                cells.get(f"mean_{j}"),
                                cells.get(f"stddev_{j}"),
                            )
                        elif (k > 0 or not moments) and c.name not in MOMENTS:
                            func, f = selectors[k - (1 if moments else 0)]
                            if f == field_name and (func == c.name or c.name == "spread"):
                                accumulators[i].add_selector(func, cells["value"], row[0])
        return result(self._aggregate_series(tree, calls, groups))

    def _aggregate_series(
        self, tree: Select, calls: list[Call], groups: dict[Any, Group]
    ) -> list[Series]:
        every = time_range(tree.condition)
        single_selector = len(calls) == 1 and calls[0].name in SELECTORS
        rows: dict[Any, list[tuple[int, list[Any]]]] = {}
        for key, group in groups.items():
            if tree.time_dimension is None:
                accumulators = (
                    group.row(0) if not group.windows else next(iter(group.windows.values()))
                )
                if len(group.windows) > 1:  # one row per series: join the pairs' rows
                    for more in list(group.windows.values())[1:]:
                        _merge_rows(accumulators, more)
                if any(a.seen for a in accumulators):
                    start = every.start if every.start is not None else 0
                    stamp = accumulators[0].time if single_selector else start
                    rows[key] = [(stamp or 0, [a.result() for a in accumulators])]
            else:
                had = sorted(
                    (w, [a.result() for a in accs])
                    for w, accs in group.windows.items()
                    if any(a.seen for a in accs)
                )
                if had:
                    rows[key] = had
        return shaped(tree, calls, rows, self.now_ns, self.max_rows)

    async def raw_aggregate(self, tree: Select, calls: list[Call]) -> Result:
        """Aggregates computed from the raw points (:mod:`.rawcalc`), at most
        ``max_rows`` of them."""
        if any(c.name == "distinct" for c in calls) and len(calls) > 1:
            raise StatementError(
                "aggregate function distinct() cannot be combined with other functions or fields"
            )
        dims, added = self._dimensions(tree)
        fields = list(dict.fromkeys(_field(c) for c in calls))
        sent = dataclasses.replace(
            tree,
            fields=tuple(Field(VarRef(f)) for f in fields),
            dimensions=tuple(d for d in dims if not isinstance(d, TimeDimension)),
            fill="null",
            fill_value=None,
            descending=False,
            limit=self.max_rows + 1,
            offset=0,
            slimit=0,
            soffset=0,
        )
        pairs = pinned(tree.condition, PLACEMENT_KEY)
        answers = await self._fan_out(influxql.front_select(sent), pairs)
        chosen = one_copy(
            {s: a[0] if a else [] for s, a in answers.items()}, PLACEMENT_KEY, self._owners()
        )
        if sum(len(s["values"]) for s in chosen) > self.max_rows:
            names = ", ".join(sorted({c.name.upper() for c in calls if c.name in RAW_ONLY}))
            raise StatementError(
                f"{names} is computed from the raw points, at most FEDERATION_INFLUX_MAX_ROWS"
                f" ({self.max_rows}) of them, and this statement selects more: narrow its"
                " time range or tags"
            )
        points: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
        for series in chosen:
            tags = dict(series.get("tags", {}))
            if added:
                tags.pop(PLACEMENT_KEY, None)
            cells = points.setdefault((series.get("name", ""), tuple(sorted(tags.items()))), [])
            for row in series["values"]:
                cells.append((row[0], dict(zip(series["columns"], row, strict=True))))
        every = time_range(tree.condition)
        interval = tree.time_dimension
        single = len(calls) == 1 and calls[0].name in POINT_SELECTORS
        rows: dict[Any, list[tuple[int, list[Any]]]] = {}
        for key, held in points.items():
            held.sort(key=lambda p: p[0])
            windows: dict[int, list[tuple[int, dict[str, Any]]]] = {}
            for t, cell in held:
                start = window_of(interval, t) if interval else 0
                windows.setdefault(start, []).append((t, cell))
            out: list[tuple[int, list[Any]]] = []
            for start, window in sorted(windows.items()):
                results = [compute(c.name, _values(window, _field(c)), _argument(c)) for c in calls]
                if not any(results):
                    continue
                base = start if interval else (every.start if every.start is not None else 0)
                for k in range(max(len(r) for r in results)):
                    stamp = results[0][k][0] if single and not interval else base
                    row = [r[k][1] if k < len(r) else None for r in results]
                    out.append((stamp if stamp is not None else base, row))
            if out:
                rows[key] = out
        return result(shaped(tree, calls, rows, self.now_ns, self.max_rows))


def _merge_rows(into: list[Any], more: list[Any]) -> None:
    """Accumulators of one series' rows stamped differently (selectors' point times)
    joined into one (without GROUP BY time each series has one row)."""
    for a, b in zip(into, more, strict=True):
        if not b.seen:
            continue
        if not a.seen:
            a.__dict__.update(b.__dict__)
        elif a.func in MOMENTS:
            a.add_moments(b.n, b.total, b.mean, None) if a.func != "stddev" else _chan(a, b)
        elif a.func == "spread":
            a.add_selector("spread", b.low, 0)
            a.add_selector("spread", b.high, 0)
        else:
            assert b.time is not None
            a.add_selector(a.func, b.value, b.time)


def _chan(a: Any, b: Any) -> None:
    combined = a.n + b.n
    delta = b.mean - a.mean
    a.m2 += b.m2 + delta * delta * a.n * b.n / combined
    a.mean += delta * b.n / combined
    a.n = combined


def _values(window: list[tuple[int, dict[str, Any]]], name: str) -> list[Point]:
    return [(t, cell[name]) for t, cell in window if cell.get(name) is not None]


def _argument(call: Call) -> float | None:
    if len(call.args) == 2 and isinstance(call.args[1], IntegerLit | NumberLit):
        return float(call.args[1].value)
    return None


def _computable(call: Call) -> bool:
    if call.name == "percentile":
        return (
            len(call.args) == 2
            and isinstance(call.args[0], VarRef)
            and isinstance(call.args[1], IntegerLit | NumberLit)
        )
    return (call.name in RAW_ONLY or call.name in COMBINABLE) and _of_one_field(call)


def _of_one_field(call: Call) -> bool:
    return len(call.args) == 1 and isinstance(call.args[0], VarRef)


def _combinable(call: Call) -> bool:
    return call.name in COMBINABLE and _of_one_field(call)


def _field(call: Call) -> str:
    arg = call.args[0]
    assert isinstance(arg, VarRef)
    return arg.name
