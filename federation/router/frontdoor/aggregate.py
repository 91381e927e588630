"""SELECTs of aggregates combinable from per-shard partials (COUNT, SUM, MEAN, STDDEV,
MIN, MAX, FIRST, LAST, SPREAD): what each shard is asked, and the partials of every
series (each read from one copy, :mod:`.copies`) combined per group of the client's
dimensions and window (:mod:`.combine`), then shaped as InfluxDB shapes them
(:mod:`.series`).

Each shard is asked, in one request, one statement of the moments every field needs
(counts and sums, and for STDDEV means and sample deviations) and one statement per
selector (so its point time comes back); SPREAD asks MIN and MAX.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from federation.core.influxql_ast import Call, Field, Select, VarRef
from federation.core.types import Series
from federation.router.frontdoor.combine import COMBINABLE, MOMENTS, SELECTORS, Accumulator, Group
from federation.router.frontdoor.conditions import time_range
from federation.router.frontdoor.copies import Regroup
from federation.router.frontdoor.series import Result, result, shaped

if TYPE_CHECKING:
    from federation.router.frontdoor.run import Runner

# What each shard is asked per function combined from moments (the count always: it
# says whether a group had points).
PARTIALS = {
    "count": ("count",),
    "sum": ("count", "sum"),
    "mean": ("count", "sum"),
    "stddev": ("count", "mean", "stddev"),
}


def combinable(call: Call) -> bool:
    return call.name in COMBINABLE and of_one_field(call)


def of_one_field(call: Call) -> bool:
    return len(call.args) == 1 and isinstance(call.args[0], VarRef)


def field_of(call: Call) -> str:
    arg = call.args[0]
    assert isinstance(arg, VarRef)
    return arg.name


async def aggregate(runner: Runner, tree: Select, calls: list[Call]) -> Result:
    sending = runner.plan(tree)
    base = dataclasses.replace(
        tree,
        dimensions=sending.dimensions,
        fill="none",
        fill_value=None,
        descending=False,
        limit=0,
        offset=0,
        slimit=0,
        soffset=0,
    )
    fields = list(dict.fromkeys(field_of(c) for c in calls if c.name in MOMENTS))
    moments = [
        Field(Call(func, (VarRef(f),)), f"{func}_{i}")
        for i, f in enumerate(fields)
        for func in MOMENTS
        if func in {n for c in calls if field_of(c) == f for n in PARTIALS.get(c.name, ())}
    ]
    selectors = list(
        dict.fromkeys(
            (func, field_of(c))
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
    read = await runner.read(tuple(selects), sending.keys)
    regroup = Regroup(tree, [s for chosen in read for s in chosen])
    names = [c.name for c in calls]
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], Group] = {}
    for k, chosen in enumerate(read):
        for series in chosen:
            group = groups.setdefault((series.get("name", ""), regroup.tags(series)), Group(names))
            if k == 0 and moments:
                _add_moments(group, series, calls, fields)
            else:
                func, f = selectors[k - (1 if moments else 0)]
                _add_selector(group, series, calls, func, f)
    return result(_aggregate_series(runner, tree, calls, groups))


def _add_moments(group: Group, series: Series, calls: list[Call], fields: list[str]) -> None:
    columns = series["columns"]
    for row in series["values"]:
        accumulators = group.row(row[0])
        cells = dict(zip(columns, row, strict=True))
        for i, c in enumerate(calls):
            if c.name in MOMENTS:
                j = fields.index(field_of(c))
                accumulators[i].add_moments(
                    cells[f"count_{j}"] or 0,
                    cells.get(f"sum_{j}"),
                    cells.get(f"mean_{j}"),
                    cells.get(f"stddev_{j}"),
                )


def _add_selector(group: Group, series: Series, calls: list[Call], func: str, field: str) -> None:
    at = series["columns"].index("value")
    for row in series["values"]:
        accumulators = group.row(row[0])
        for i, c in enumerate(calls):
            if c.name not in MOMENTS and field_of(c) == field and c.name in {func, "spread"}:
                accumulators[i].add_selector(func, row[at], row[0])


def _aggregate_series(
    runner: Runner, tree: Select, calls: list[Call], groups: dict[Any, Group]
) -> list[Series]:
    every = time_range(tree.condition)
    single_selector = len(calls) == 1 and calls[0].name in SELECTORS
    rows: dict[Any, list[tuple[int, list[Any]]]] = {}
    for key, group in groups.items():
        if tree.time_dimension is None:
            accumulators = group.row(0) if not group.windows else next(iter(group.windows.values()))
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
    return shaped(tree, calls, rows, runner.now_ns, runner.max_rows)


def _merge_rows(into: list[Accumulator], more: list[Accumulator]) -> None:
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


def _chan(a: Accumulator, b: Accumulator) -> None:
    combined = a.n + b.n
    delta = b.mean - a.mean
    a.m2 += b.m2 + delta * delta * a.n * b.n / combined
    a.mean += delta * b.n / combined
    a.n = combined
