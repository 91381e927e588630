"""SELECTs answered from raw points: the points themselves, and the functions no
partial can combine (MEDIAN, PERCENTILE, MODE, DISTINCT, and every call beside one of
them, :mod:`.rawcalc`).

Each series is read from one copy (:mod:`.copies`) and merged into the client's groups
in time order. A time shared by points of several series is ordered by their tags
(influxd's own order of such ties is its merge's, unspecified). A raw SELECT is sent
with LIMIT widened by the OFFSET (paging is applied to the merged rows); the functions
read at most ``FEDERATION_INFLUX_MAX_ROWS`` points, past which the statement is an
error naming that limit.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from federation.core.influxql_ast import (
    Call,
    Field,
    IntegerLit,
    NumberLit,
    Select,
    TimeDimension,
    VarRef,
    Wildcard,
)
from federation.core.types import Series
from federation.router.frontdoor.aggregate import field_of, of_one_field
from federation.router.frontdoor.budget import RowBudget
from federation.router.frontdoor.combine import COMBINABLE
from federation.router.frontdoor.conditions import time_range
from federation.router.frontdoor.copies import Regroup, Tags, rows_as, star_columns
from federation.router.frontdoor.rawcalc import POINT_SELECTORS, RAW_ONLY, Point, compute
from federation.router.frontdoor.series import (
    Result,
    StatementError,
    page,
    page_series,
    result,
    series_of,
    shaped,
    window_of,
)

if TYPE_CHECKING:
    from federation.router.frontdoor.run import Runner

Group = tuple[str, Tags]


def computable(call: Call) -> bool:
    if call.name == "percentile":
        return (
            len(call.args) == 2
            and isinstance(call.args[0], VarRef)
            and isinstance(call.args[1], IntegerLit | NumberLit)
        )
    return (call.name in RAW_ONLY or call.name in COMBINABLE) and of_one_field(call)


def _order(series: Series) -> Tags:
    return tuple(sorted(series.get("tags", {}).items()))


async def raw(runner: Runner, tree: Select) -> Result:
    sending = runner.plan(tree)
    sent = dataclasses.replace(
        tree,
        dimensions=sending.dimensions,
        limit=tree.limit + tree.offset if tree.limit else 0,
        offset=0,
        slimit=0,
        soffset=0,
    )
    budget = RowBudget(
        runner.max_rows,
        f"this statement selects more than FEDERATION_INFLUX_MAX_ROWS ({runner.max_rows})"
        " raw points, which the router would have to hold to merge them: narrow its time"
        " range or tags, or page it with LIMIT and OFFSET",
    )
    (chosen,) = await runner.read((sent,), sending.keys, budget)
    regroup = Regroup(tree, chosen)
    columns = None
    if any(isinstance(f.expr, Wildcard) for f in tree.fields):
        columns = star_columns(chosen, regroup.hidden())
    groups: dict[Group, tuple[list[str], list[tuple[int, Tags, list[Any]]]]] = {}
    for series in chosen:
        shown = columns or series["columns"]
        held = groups.setdefault((series.get("name", ""), regroup.tags(series)), (shown, []))
        order = _order(series)
        held[1].extend((v[0], order, v) for v in rows_as(series, shown))
    out: list[Series] = []
    for (name, group_tags), (shown, rows) in sorted(groups.items(), reverse=tree.descending):
        rows.sort(key=lambda r: (r[0], r[1]), reverse=tree.descending)
        values = page([r[2] for r in rows], tree.limit, tree.offset)
        if values:
            out.append(series_of(name, group_tags, tree, shown, values))
    return result(page_series(out, tree))


async def raw_aggregate(runner: Runner, tree: Select, calls: list[Call]) -> Result:
    """Aggregates computed from the raw points (:mod:`.rawcalc`), at most
    ``max_rows`` of them."""
    if any(c.name == "distinct" for c in calls) and len(calls) > 1:
        raise StatementError(
            "aggregate function distinct() cannot be combined with other functions or fields"
        )
    sending = runner.plan(tree)
    fields = list(dict.fromkeys(field_of(c) for c in calls))
    sent = dataclasses.replace(
        tree,
        fields=tuple(Field(VarRef(f)) for f in fields),
        dimensions=tuple(d for d in sending.dimensions if not isinstance(d, TimeDimension)),
        fill="null",
        fill_value=None,
        descending=False,
        limit=runner.max_rows + 1,
        offset=0,
        slimit=0,
        soffset=0,
    )
    names = ", ".join(sorted({c.name.upper() for c in calls if c.name in RAW_ONLY}))
    budget = RowBudget(
        runner.max_rows,
        f"{names} is computed from the raw points, at most FEDERATION_INFLUX_MAX_ROWS"
        f" ({runner.max_rows}) of them, and this statement selects more: narrow its"
        " time range or tags",
    )
    (chosen,) = await runner.read((sent,), sending.keys, budget)
    regroup = Regroup(tree, chosen)
    points: dict[Group, list[tuple[int, Tags, dict[str, Any]]]] = {}
    for series in chosen:
        cells = points.setdefault((series.get("name", ""), regroup.tags(series)), [])
        order = _order(series)
        for row in series["values"]:
            cells.append((row[0], order, dict(zip(series["columns"], row, strict=True))))
    every = time_range(tree.condition)
    interval = tree.time_dimension
    single = len(calls) == 1 and calls[0].name in POINT_SELECTORS
    rows: dict[Any, list[tuple[int, list[Any]]]] = {}
    for key, held in points.items():
        held.sort(key=lambda p: (p[0], p[1]))
        windows: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for t, _, cell in held:
            start = window_of(interval, t) if interval else 0
            windows.setdefault(start, []).append((t, cell))
        out: list[tuple[int, list[Any]]] = []
        for start, window in sorted(windows.items()):
            results = [compute(c.name, _values(window, field_of(c)), _argument(c)) for c in calls]
            if not any(results):
                continue
            base = start if interval else (every.start if every.start is not None else 0)
            for k in range(max(len(r) for r in results)):
                stamp = results[0][k][0] if single and not interval else base
                row = [r[k][1] if k < len(r) else None for r in results]
                out.append((stamp if stamp is not None else base, row))
        if out:
            rows[key] = out
    return result(shaped(tree, calls, rows, runner.now_ns, runner.max_rows))


def _values(window: list[tuple[int, dict[str, Any]]], name: str) -> list[Point]:
    return [(t, cell[name]) for t, cell in window if cell.get(name) is not None]


def _argument(call: Call) -> float | None:
    if len(call.args) == 2 and isinstance(call.args[1], IntegerLit | NumberLit):
        return float(call.args[1].value)
    return None
