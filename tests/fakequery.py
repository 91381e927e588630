"""The front door's statements (``front_select``, ``front_selects``, ``front_show``)
answered by a FakeShard from their trees (the catalogue's arguments), never their text:
the subset the router sends, computed with pandas over the fake's points.

SELECT: raw fields or COUNT, SUM, MEAN, STDDEV, MIN, MAX, FIRST, LAST of a field (with
their aliases), WHERE on tags, fields and time (=, !=, <, <=, >, >=, =~, !~, AND, OR),
GROUP BY tags, ``*`` and time(interval[, offset]) with fill(none), LIMIT; an aggregate
without GROUP BY time is stamped with its selector's point time when it is the only
call, else with the start of the range. SHOW TAG VALUES (=, IN) and SHOW SERIES.
Anything else raises NotImplementedError naming it.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from federation.core import influxql_ast as tree
from federation.core.influxql import MEASUREMENT
from federation.core.types import Series
from federation.router.frontdoor.conditions import time_range

TAGS = ["exchange", "pair"]


def _mask(points: pd.DataFrame, expr: tree.Expr | None) -> pd.Series:
    if expr is None:
        return pd.Series(True, index=points.index)
    if not isinstance(expr, tree.Binary):
        raise NotImplementedError(f"FakeShard cannot evaluate {expr!r}")
    if expr.op in {"AND", "OR"}:
        lhs, rhs = _mask(points, expr.lhs), _mask(points, expr.rhs)
        return (lhs & rhs) if expr.op == "AND" else (lhs | rhs)
    if not isinstance(expr.lhs, tree.VarRef):
        raise NotImplementedError(f"FakeShard cannot evaluate {expr!r}")
    column = points[expr.lhs.name.lower() if expr.lhs.name.lower() == "time" else expr.lhs.name]
    rhs = expr.rhs
    if isinstance(rhs, tree.RegexLit):
        found = column.astype(str).map(lambda v: re.search(rhs.pattern, v) is not None)
        return found if expr.op == "=~" else ~found
    value = getattr(rhs, "value", None)
    ops = {
        "=": column == value,
        "!=": column != value,
        "<": column < value,
        "<=": column <= value,
        ">": column > value,
        ">=": column >= value,
    }
    return ops[expr.op]


def _dims(select: tree.Select) -> list[str]:
    names: list[str] = []
    for d in select.dimensions:
        if isinstance(d, tree.Wildcard):
            names.extend(t for t in TAGS if t not in names)
        elif isinstance(d, tree.VarRef):
            names.append(d.name)
    return names


def _call(func: str, rows: pd.DataFrame, column: str) -> tuple[Any, int | None]:
    values = rows[column].dropna()
    if values.empty:
        return None, None
    times = rows.loc[values.index, "time"]
    if func == "count":
        return int(values.count()), None
    if func == "sum":
        return float(values.sum()), None
    if func == "mean":
        return float(values.mean()), None
    if func == "stddev":
        return (float(values.std(ddof=1)) if len(values) > 1 else None), None
    order = {"min": values.idxmin(), "max": values.idxmax()}
    if func in order:
        return float(values[order[func]]), int(times[order[func]])
    ranked = pd.DataFrame({"t": times, "v": values}).sort_values(
        ["t", "v"], ascending=[func == "first", False]
    )
    return float(ranked["v"].iloc[0]), int(ranked["t"].iloc[0])


def select(points: pd.DataFrame, statement: tree.Select) -> list[Series]:
    """The series one influxd holding ``points`` (time in ns) answers (times in ns)."""
    if not all(s.name == MEASUREMENT for s in statement.sources):
        return []
    rows = points[_mask(points, statement.condition)]
    dims = _dims(statement)
    calls = [f for f in statement.fields if isinstance(f.expr, tree.Call)]
    out: list[Series] = []
    groups = rows.groupby(dims, sort=True) if dims else [((), rows)]
    for key, group in groups:
        tags = dict(zip(dims, key if isinstance(key, tuple) else (key,), strict=True))
        series: Series = {"name": MEASUREMENT, "tags": tags} if dims else {"name": MEASUREMENT}
        if not calls:
            names = [f.expr.name for f in statement.fields if isinstance(f.expr, tree.VarRef)]
            values = group.sort_values("time")[["time", *names]].astype(object)
            values = values.where(values.notna(), None).to_numpy().tolist()
            if statement.limit:
                values = values[: statement.limit]
            out.append({**series, "columns": ["time", *names], "values": values})
            continue
        interval = statement.time_dimension
        start = time_range(statement.condition).start or 0
        if interval:
            window = group["time"] - (group["time"] - interval.offset_ns) % interval.interval_ns
            buckets = list(group.groupby(window, sort=True))
        else:
            buckets = [(start, group)]
        values = []
        for bucket, in_bucket in buckets:
            cells = [
                _call(f.expr.name, in_bucket, f.expr.args[0].name)  # type: ignore[union-attr]
                for f in calls
            ]
            stamp = int(bucket)
            if not interval and len(calls) == 1 and cells[0][1] is not None:
                stamp = cells[0][1]
            values.append([stamp, *(c[0] for c in cells)])
        names = [f.alias or f.expr.name for f in calls]  # type: ignore[union-attr]
        out.append({**series, "columns": ["time", *names], "values": values})
    return out


def show(points: pd.DataFrame, statement: tree.Show) -> list[Series]:
    rows = points[_mask(points, statement.condition)]
    if statement.kind == "series":
        keys = sorted(
            {
                f"{MEASUREMENT},exchange={e},pair={p}"
                for e, p in zip(rows["exchange"], rows["pair"], strict=True)
            }
        )
        return [{"columns": ["key"], "values": [[k] for k in keys]}] if keys else []
    if statement.kind == "tag values" and statement.key_op in {"=", "IN"}:
        values = sorted({(k, v) for k in statement.keys if k in rows for v in rows[k]})
        if not values:
            return []
        pairs = [list(v) for v in values]
        return [{"name": MEASUREMENT, "columns": ["key", "value"], "values": pairs}]
    raise NotImplementedError(f"FakeShard cannot show {statement.kind}")
