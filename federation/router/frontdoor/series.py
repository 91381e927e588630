"""The series of an aggregate's answer, as InfluxDB shapes them: columns named by alias
or function (a repeated name gets ``_1``), GROUP BY time's windows and fill, ORDER BY
time DESC (series too), LIMIT/OFFSET per series and SLIMIT/SOFFSET; and
:class:`StatementError`, a statement's own error, given in its result."""

from __future__ import annotations

from typing import Any

from federation.core.influxql_ast import Call, Select, TimeDimension
from federation.core.types import Series
from federation.router.frontdoor.combine import filled
from federation.router.frontdoor.conditions import MAX_TIME, time_range

Result = dict[str, Any]


class StatementError(Exception):
    """The statement's error, given in its result (``results[i].error``)."""


def shaped(
    tree: Select,
    calls: list[Call],
    groups: dict[Any, list[tuple[int, list[Any]]]],
    now_ns: int,
    max_rows: int,
) -> list[Series]:
    """The series of an aggregate from each group's rows that had points: windows
    filled, ordered, paged as the statement asks."""
    columns = ["time", *_column_names(tree)]
    every = time_range(tree.condition)
    interval = tree.time_dimension
    out: list[Series] = []
    for (name, tags), had in sorted(groups.items(), reverse=tree.descending):
        rows = had
        if interval is not None and not any(c.name == "distinct" for c in calls):
            rows = filled(
                had,
                _windows(interval, every.start, every.end, now_ns, had, max_rows),
                tree.fill,
                tree.fill_value,
                [c.name for c in calls],
            )
            if tree.fill == "null":
                for _, values in rows:
                    for i, c in enumerate(calls):
                        if c.name == "count" and values[i] is None:
                            values[i] = 0
        if tree.descending:
            rows = rows[::-1]
        values = page([[t, *v] for t, v in rows], tree.limit, tree.offset)
        if values:
            out.append(series_of(name, tags, tree, columns, values))
    return page_series(out, tree)


def page_series(out: list[Series], tree: Select) -> list[Series]:
    """SLIMIT and SOFFSET over the answer's series, counted in influxd's order of tag
    sets (by ``MakeTagsKey``: the present tags' keys, then their values, joined by
    ``|``, so a series lacking a tag comes before those that have it); the series kept
    stay in the answer's order."""
    if not tree.slimit and not tree.soffset:
        return out
    ranked = sorted(range(len(out)), key=lambda i: _tag_set_key(out[i]))
    kept = set(page(ranked, tree.slimit, tree.soffset))
    return [s for i, s in enumerate(out) if i in kept]


def _tag_set_key(series: Series) -> tuple[str, str]:
    present = sorted((k, v) for k, v in series.get("tags", {}).items() if v)
    return series.get("name", ""), "|".join([k for k, _ in present] + [v for _, v in present])


def _windows(
    interval: TimeDimension,
    start: int | None,
    end: int | None,
    now_ns: int,
    had: list[tuple[int, list[Any]]],
    max_rows: int,
) -> range:
    size, offset = interval.interval_ns, interval.offset_ns

    def window(t: int) -> int:
        return t - (t - offset) % size

    first = window(start) if start is not None else had[0][0]
    last = window(end if end is not None and end < MAX_TIME else now_ns)
    windows = range(first, last + 1, size)
    if len(windows) > max_rows:
        raise StatementError(
            f"GROUP BY time makes {len(windows)} windows a series, more than"
            f" FEDERATION_INFLUX_MAX_ROWS ({max_rows}): narrow the time range or widen the"
            " interval"
        )
    return windows


def window_of(interval: TimeDimension, t: int) -> int:
    return t - (t - interval.offset_ns) % interval.interval_ns


def _column_names(tree: Select) -> list[str]:
    """The columns of an aggregate's answer as InfluxDB names them: the alias, else the
    function's name; a repeated name gets ``_1``, ``_2``..."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for f in tree.fields:
        assert isinstance(f.expr, Call)
        name = f.alias or f.expr.name
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        names.append(name)
    return names


def series_of(
    name: str,
    tags: tuple[tuple[str, str], ...],
    tree: Select,
    columns: list[str],
    values: list[Any],
) -> Series:
    series: Series = {"name": name, "columns": columns, "values": values}
    if tree.dimensions and any(not isinstance(d, TimeDimension) for d in tree.dimensions):
        series = {"name": name, "tags": dict(tags), "columns": columns, "values": values}
    return series


def page(items: list[Any], limit: int, offset: int) -> list[Any]:
    items = items[offset:]
    return items[:limit] if limit else items


def result(series: list[Series]) -> Result:
    return {"series": series} if series else {}
