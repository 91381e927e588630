"""The InfluxQL catalogue: every statement the project sends to a shard is built by a
named function of this module, and no other module writes InfluxQL.

Every identifier goes through :func:`quote_ident` and every string literal through
:func:`quote_literal`, so no caller-supplied string reaches a shard unescaped (the
router validates its inputs as well; this is the second wall, not the only one).
Durations are rendered from parsed numbers, never copied from input, and times are
integers with their unit (``1700000000000ms``).

Each function returns a :class:`Statement`: the text sent, and what built it (``kind``,
the function's name, and ``args``, its arguments by name). A real shard is sent the
text; a fake one answers by kind and arguments, so no test depends on how the text is
spelled. :data:`CATALOGUE` lists the functions, so tests can go through every one.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ParamSpec

from federation.core import influxql_ast as ast
from federation.core.durations import Duration
from federation.core.rollup import MEASUREMENT as ROLLUP
from federation.core.rollup import slot

MEASUREMENT = "price"

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_P = ParamSpec("_P")


def _escape(value: str, quote: str) -> str:
    # InfluxQL's scanner understands \\, \', \" and \n inside quotes; other control
    # characters have no escape, so they are refused rather than passed through.
    if _CONTROL.search(value):
        raise ValueError(f"control characters cannot be quoted in InfluxQL: {value!r}")
    return value.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\n", "\\n")


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted InfluxQL identifier."""
    return '"' + _escape(name, '"') + '"'


def quote_literal(value: str) -> str:
    """``value`` as a single-quoted InfluxQL string literal."""
    return "'" + _escape(value, "'") + "'"


@dataclass(frozen=True)
class Statement:
    """InfluxQL text (one statement, or several separated by ``;`` whose answer has one
    result each), with the catalogue function that built it and its arguments."""

    text: str
    kind: str
    args: Mapping[str, object]


@dataclass(frozen=True)
class TimeRange:
    """Epoch milliseconds from ``start_ms`` to ``end_ms``, each end included or not."""

    start_ms: int
    end_ms: int
    start_inclusive: bool = True
    end_inclusive: bool = False

    def condition(self) -> str:
        return (
            f"time {'>=' if self.start_inclusive else '>'} {_time(self.start_ms, 'ms')} AND "
            f"time {'<=' if self.end_inclusive else '<'} {_time(self.end_ms, 'ms')}"
        )


CATALOGUE: dict[str, Callable[..., Statement]] = {}


def _catalogued(build: Callable[_P, str]) -> Callable[_P, Statement]:
    """Make ``build`` return a :class:`Statement` of its text, its name as the kind and
    its arguments (defaults included) as the args; list it in :data:`CATALOGUE`."""
    signature = inspect.signature(build)

    @functools.wraps(build)
    def statement(*args: _P.args, **kwargs: _P.kwargs) -> Statement:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return Statement(
            build(*args, **kwargs), build.__name__, MappingProxyType(dict(bound.arguments))
        )

    CATALOGUE[build.__name__] = statement
    return statement


def _time(value: int, unit: str) -> str:
    return f"{int(value)}{unit}"


_M = quote_ident(MEASUREMENT)
_PRICE, _VOLUME = quote_ident("price"), quote_ident("volume")
_EXCHANGE, _PAIR = quote_ident("exchange"), quote_ident("pair")
_BY_SERIES = f"{_EXCHANGE}, {_PAIR}"


def _since(duration: Duration) -> str:
    """The condition selecting the window that ends now."""
    return f"time > now() - {duration.length}"


def _tags(**tags: str | None) -> list[str]:
    return [f"{quote_ident(k)} = {quote_literal(v)}" for k, v in tags.items() if v is not None]


def _where(*conditions: str) -> str:
    return " WHERE " + " AND ".join(conditions)


def _pair_range_ns(pair: str, start_ns: int, end_ns: int) -> str:
    return _where(
        *_tags(pair=pair), f"time >= {_time(start_ns, 'ns')}", f"time <= {_time(end_ns, 'ns')}"
    )


# Administration.


@_catalogued
def create_database(name: str) -> str:
    return f"CREATE DATABASE {quote_ident(name)}"


# The router: GET /{pair}, /pairs, /shards.


@_catalogued
def prices_query(pair: str, duration: Duration, exchange: str | None = None) -> str:
    """Every point of one pair in the window, in time order, with its exchange."""
    return f"SELECT {_PRICE}, {_EXCHANGE} FROM {_M}" + _where(
        _since(duration), *_tags(pair=pair, exchange=exchange)
    )


@_catalogued
def prices_range_query(pair: str, start_ms: int, end_ms: int | None = None) -> str:
    """Every point of one pair from ``start_ms`` (included) to ``end_ms`` (excluded; None:
    every later point), in time order, with its exchange: what the hot cache reads."""
    conditions = [f"time >= {_time(start_ms, 'ms')}"]
    if end_ms is not None:
        conditions.append(f"time < {_time(end_ms, 'ms')}")
    return f"SELECT {_PRICE}, {_EXCHANGE} FROM {_M}" + _where(*conditions, *_tags(pair=pair))


@_catalogued
def stddev_query(duration: Duration, exchange: str | None = None) -> str:
    """The sample standard deviation of price for every (exchange, pair) series."""
    return (
        f"SELECT STDDEV({_PRICE}) FROM {_M}"
        + _where(_since(duration), *_tags(exchange=exchange))
        + f" GROUP BY {_BY_SERIES}"
    )


@_catalogued
def stddev_range_query(span: TimeRange) -> str:
    """:func:`stddev_query` over a fixed range of time instead of the window ending now."""
    where = _where(span.condition())
    return f"SELECT STDDEV({_PRICE}) FROM {_M}{where} GROUP BY {_BY_SERIES}"


@_catalogued
def series_query() -> str:
    """The series keys of every series (``price,exchange=...,pair=...``), any time."""
    return f"SHOW SERIES FROM {_M}"


@_catalogued
def series_of_pair_query(pair: str, exchange: str | None = None) -> str:
    """The series keys of one pair (any time): tells an unknown pair from a quiet one."""
    return f"SHOW SERIES FROM {_M}" + _where(*_tags(pair=pair, exchange=exchange))


@_catalogued
def census_query() -> str:
    """Every series key, from which ``/shards`` counts series and pairs. Not ``SHOW TAG
    VALUES``: InfluxDB 1.6 goes on listing a pair there after its series were dropped."""
    return f"SHOW SERIES FROM {_M}"


# The rank table. Its buckets close on the right: a bucket labelled ``m`` holds the
# points of (m, m + bucket], by InfluxDB's offset of one microsecond, so the window
# (t - W, t] of a t on a bucket boundary is whole buckets (points are stored in ms).


def _buckets(bucket_s: int) -> str:
    return f"time({_time(bucket_s, 's')}, 1u)"


@_catalogued
def bucket_counts_query(span: TimeRange, bucket_s: int) -> str:
    """Points per bucket (m, m + bucket] (all series together) in the range; buckets
    without points absent."""
    where = _where(span.condition())
    return f"SELECT COUNT({_PRICE}) FROM {_M}{where} GROUP BY {_buckets(bucket_s)} fill(none)"


@_catalogued
def count_query(span: TimeRange) -> str:
    """Points in the range, all series together (one row, stamped with its start)."""
    return f"SELECT COUNT({_PRICE}) FROM {_M}" + _where(span.condition())


@_catalogued
def moments_query(span: TimeRange, bucket_s: int = 0) -> str:
    """COUNT, MEAN and STDDEV of price per series in the range, and per bucket
    (m, m + bucket] when ``bucket_s`` is given."""
    group = f"{_buckets(bucket_s)}, " if bucket_s else ""
    return (
        f"SELECT COUNT({_PRICE}), MEAN({_PRICE}), STDDEV({_PRICE}) FROM {_M}"
        + _where(span.condition())
        + f" GROUP BY {group}{_BY_SERIES}"
        + (" fill(none)" if bucket_s else "")
    )


@_catalogued
def points_query(span: TimeRange) -> str:
    """Every point in the range with its series' tags, as one series (no GROUP BY): the
    rank table's newest minute, whose moments the router makes itself."""
    return f"SELECT {_PRICE}, {_EXCHANGE}, {_PAIR} FROM {_M}" + _where(span.condition())


@_catalogued
def rollup_query(span: TimeRange, minutes: tuple[int, ...]) -> str:
    """The minute rollup (:mod:`federation.core.rollup`) in the range, by kind: the done
    and tick rows, and the series rows of ``minutes`` only (their slots: a few series
    however many series of prices, the rank table's newest minutes)."""
    fields = ("exchange", "pair", "n", "mean", "m2", "rows", "points", "late")
    slots = sorted({slot(m) for m in minutes})
    kinds = [f"{quote_ident('kind')} = {quote_literal(k)}" for k in ("done", "tick")]
    if len(slots) < 60:
        kinds += [f"{quote_ident('slot')} = {quote_literal(s)}" for s in slots]
    else:
        kinds.append(f"{quote_ident('kind')} = {quote_literal('series')}")
    return (
        f"SELECT {', '.join(map(quote_ident, fields))} FROM {quote_ident(ROLLUP)}"
        + _where(span.condition(), "(" + " OR ".join(kinds) + ")")
        + f" GROUP BY {quote_ident('kind')}"
    )


@_catalogued
def write_stats_query() -> str:
    """The server's counters of each storage shard (tags ``database``...), among them
    ``writePointsOk``, the points written since the server started: a counter that moved
    by more than the points a refresh found in new minutes means points landed in
    minutes already read. Needs admin rights where authentication is on."""
    return "SHOW STATS FOR " + quote_literal("shard")


# The ingester and the alerts.


@_catalogued
def last_prices_query(window_s: int) -> str:
    """The newest price of every series within the last ``window_s`` seconds (its time
    is the row's): where a restarted simulated market picks up."""
    return (
        f"SELECT LAST({_PRICE}) FROM {_M}"
        + _where(f"time > now() - {_time(window_s, 's')}")
        + f" GROUP BY {_BY_SERIES}"
    )


@_catalogued
def buckets_query(start_ms: int, end_ms: int, bucket_s: int) -> str:
    """Sums and counts of price and volume per epoch-aligned bucket and series in
    [start, end); buckets without points absent."""
    return (
        f"SELECT SUM({_PRICE}) AS {quote_ident('price_sum')}, "
        f"COUNT({_PRICE}) AS {quote_ident('price_count')}, "
        f"SUM({_VOLUME}) AS {quote_ident('volume_sum')}, "
        f"COUNT({_VOLUME}) AS {quote_ident('volume_count')} FROM {_M}"
        + _where(TimeRange(start_ms, end_ms).condition())
        + f" GROUP BY time({_time(bucket_s, 's')}), {_BY_SERIES} fill(none)"
    )


# The rebalance (its times are epoch nanoseconds, asked with epoch=ns).


@_catalogued
def pair_counts_query() -> str:
    """Points per series, any time."""
    return f"SELECT COUNT({_PRICE}) FROM {_M} GROUP BY {_PAIR}, {_EXCHANGE}"


@_catalogued
def field_keys_query() -> str:
    return f"SHOW FIELD KEYS FROM {_M}"


@_catalogued
def pair_bounds_query(pair: str) -> str:
    """Two results: the first and the last point of the pair (their times are the rows')."""
    where = _where(*_tags(pair=pair))
    return f"SELECT FIRST({_PRICE}) FROM {_M}{where}; SELECT LAST({_PRICE}) FROM {_M}{where}"


@_catalogued
def pair_points_query(pair: str, start_ns: int, end_ns: int) -> str:
    """Every point of the pair in [start, end], with its fields and exchange."""
    return f"SELECT {_PRICE}, {_VOLUME}, {_EXCHANGE} FROM {_M}" + _pair_range_ns(
        pair, start_ns, end_ns
    )


@_catalogued
def pair_stats_query(pair: str, start_ns: int, end_ns: int) -> str:
    """Per exchange: count and sum of price and of volume of the pair in [start, end]."""
    return (
        f"SELECT COUNT({_PRICE}), SUM({_PRICE}), COUNT({_VOLUME}), SUM({_VOLUME}) FROM {_M}"
        + _pair_range_ns(pair, start_ns, end_ns)
        + f" GROUP BY {_EXCHANGE}"
    )


@_catalogued
def delete_pair_range(pair: str, start_ns: int, end_ns: int) -> str:
    """Delete the pair's points in [start, end]."""
    return f"DELETE FROM {_M}" + _pair_range_ns(pair, start_ns, end_ns)


@_catalogued
def drop_pair_series(pair: str) -> str:
    """Drop the pair's series, points and index entries (InfluxDB 1.x keeps a series
    whose points were deleted in its index, where SHOW SERIES and SHOW TAG VALUES see it).
    Sent only to a shard that holds no point of the pair any more."""
    return f"DROP SERIES FROM {_M}" + _where(*_tags(pair=pair))


# The front door (/query): a client's statement, read into a tree by
# federation.core.influxql_parser and changed by the router (times fixed, the placement
# key added to GROUP BY, aggregates split into partials), rendered back quoted.


def _number(value: float) -> str:
    text = repr(float(value))
    if "e" in text or "inf" in text or "nan" in text:
        raise ValueError(f"{value!r} cannot be written as an InfluxQL number")
    return text


def _duration(ns: int) -> str:
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if ns % (size * 1_000_000_000) == 0:
            return f"{int(ns) // (size * 1_000_000_000)}{unit}"
    for unit, size in (("ms", 1_000_000), ("u", 1_000)):
        if ns % size == 0:
            return f"{int(ns) // size}{unit}"
    return f"{int(ns)}ns"


def quote_regex(pattern: str) -> str:
    """``pattern`` as an InfluxQL ``/regex/`` (its slashes escaped)."""
    if _CONTROL.search(pattern):
        raise ValueError(f"control characters cannot be quoted in InfluxQL: {pattern!r}")
    return "/" + pattern.replace("/", "\\/") + "/"


def render_expr(expr: ast.Expr) -> str:
    """An expression of the tree, every name and string quoted, every binary operation
    in parentheses (so the shard reads the tree's own precedence)."""
    match expr:
        case ast.VarRef(name, kind):
            return quote_ident(name) + (f"::{kind}" if kind else "")
        case ast.StringLit(value):
            return quote_literal(value)
        case ast.NumberLit(value):
            return _number(value)
        case ast.IntegerLit(value):
            return str(int(value))
        case ast.DurationLit(ns):
            return _duration(ns)
        case ast.BoolLit(value):
            return "true" if value else "false"
        case ast.RegexLit(pattern):
            return quote_regex(pattern)
        case ast.Wildcard():
            return "*"
        case ast.Call(name, args):
            if not re.fullmatch(r"[a-z_]+", name):
                raise ValueError(f"{name!r} is not a function name")
            return f"{name}(" + ", ".join(render_expr(a) for a in args) + ")"
        case ast.Binary(op, lhs, rhs):
            if op not in _BINARY:
                raise ValueError(f"{op!r} is not an InfluxQL operator")
            return f"({render_expr(lhs)} {op} {render_expr(rhs)})"
    raise ValueError(f"cannot render {expr!r}")


_BINARY = frozenset(
    ("AND", "OR", "=", "!=", "<", "<=", ">", ">=", "=~", "!~", "+", "-", "*", "/", "%")
)


def _source(source: ast.Measurement) -> str:
    prefix = ""
    if source.database is not None:
        prefix = (
            quote_ident(source.database)
            + "."
            + (quote_ident(source.policy) if source.policy else "")
            + "."
        )
    elif source.policy is not None:
        prefix = quote_ident(source.policy) + "."
    if source.regex is not None:
        return prefix + quote_regex(source.regex)
    return prefix + quote_ident(source.name or "")


def _dimension(dimension: ast.Dimension) -> str:
    if isinstance(dimension, ast.TimeDimension):
        offset = f", {_duration(dimension.offset_ns)}" if dimension.offset_ns else ""
        return f"time({_duration(dimension.interval_ns)}{offset})"
    return render_expr(dimension)


def _paging(words: tuple[tuple[str, int], ...]) -> str:
    return "".join(f" {word} {int(n)}" for word, n in words if n)


def _fill(select: ast.Select) -> str:
    if select.fill == "number":
        value = select.fill_value
        return f" fill({int(value) if isinstance(value, int) else _number(value or 0.0)})"
    return f" fill({select.fill})" if select.fill != "null" else ""


@_catalogued
def front_select(select: ast.Select) -> str:
    """A SELECT of the front door, from its tree (INTO is never rendered: refused)."""
    fields = ", ".join(
        render_expr(f.expr) + (f" AS {quote_ident(f.alias)}" if f.alias else "")
        for f in select.fields
    )
    text = f"SELECT {fields} FROM " + ", ".join(_source(s) for s in select.sources)
    if select.condition is not None:
        text += " WHERE " + render_expr(select.condition)
    if select.dimensions:
        text += " GROUP BY " + ", ".join(_dimension(d) for d in select.dimensions)
    text += _fill(select)
    if select.descending:
        text += " ORDER BY time DESC"
    return text + _paging(
        (
            ("LIMIT", select.limit),
            ("OFFSET", select.offset),
            ("SLIMIT", select.slimit),
            ("SOFFSET", select.soffset),
        )
    )


@_catalogued
def front_selects(selects: tuple[ast.Select, ...]) -> str:
    """Several SELECTs of the front door sent as one request (one result each)."""
    return "; ".join(front_select(s).text for s in selects)


_SHOW_HEADS = {
    "databases": "SHOW DATABASES",
    "measurements": "SHOW MEASUREMENTS",
    "tag keys": "SHOW TAG KEYS",
    "tag values": "SHOW TAG VALUES",
    "field keys": "SHOW FIELD KEYS",
    "series": "SHOW SERIES",
    "retention policies": "SHOW RETENTION POLICIES",
}


@_catalogued
def front_show(show: ast.Show) -> str:
    """A SHOW of the front door, from its tree."""
    text = _SHOW_HEADS[show.kind]
    if show.database is not None:
        text += " ON " + quote_ident(show.database)
    if show.measurement is not None:
        text += " WITH MEASUREMENT " + (
            "=~ " + quote_regex(show.measurement.regex)
            if show.measurement.regex is not None
            else "= " + _source(show.measurement)
        )
    if show.sources:
        text += " FROM " + ", ".join(_source(s) for s in show.sources)
    if show.kind == "tag values":
        if show.key_op == "IN":
            text += " WITH KEY IN (" + ", ".join(quote_ident(k) for k in show.keys) + ")"
        elif show.key_op in {"=~", "!~"}:
            text += f" WITH KEY {show.key_op} " + quote_regex(show.key_regex or "")
        elif show.key_op in {"=", "!="}:
            text += f" WITH KEY {show.key_op} " + quote_ident(show.keys[0])
        else:
            raise ValueError(f"{show.key_op!r} is not a WITH KEY operator")
    if show.condition is not None:
        text += " WHERE " + render_expr(show.condition)
    return text + _paging((("LIMIT", show.limit), ("OFFSET", show.offset)))
