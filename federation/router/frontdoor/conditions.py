"""What the front door reads from a WHERE clause: its times made absolute (``now()``
fixed once per statement, so every shard reads the same instant), the time range it
selects, and the pairs it pins (so only their owners are asked)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from federation.core.influxql_ast import (
    Binary,
    Call,
    DurationLit,
    Expr,
    IntegerLit,
    NumberLit,
    StringLit,
    VarRef,
)

# InfluxDB 1.x's bounds of time (influxql.MinTime, MaxTime).
MIN_TIME = -9_223_372_036_854_775_806
MAX_TIME = 9_223_372_036_854_775_806
_COMPARISONS = {"=", "!=", "<", "<=", ">", ">="}
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}:\d{2})?"
)


class TimeError(ValueError):
    """A time in the WHERE clause that cannot be read; the message is InfluxDB's."""


def _is_time(expr: Expr) -> bool:
    return isinstance(expr, VarRef) and expr.name.lower() == "time"


def parse_time(text: str) -> int:
    """Nanoseconds of an RFC3339 time (or a date), as InfluxDB reads time strings."""
    match = _RFC3339.fullmatch(text)
    if not match:
        raise TimeError("invalid operation: time and *influxql.StringLiteral are not compatible")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    stamp = dt.datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        tzinfo=dt.UTC,
    )
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        stamp -= sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    seconds = int((stamp - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds())
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


def _time_value(expr: Expr, now_ns: int) -> int:
    if isinstance(expr, Call) and expr.name == "now" and not expr.args:
        return now_ns
    if isinstance(expr, StringLit):
        return parse_time(expr.value)
    if isinstance(expr, IntegerLit | DurationLit):
        return expr.value if isinstance(expr, IntegerLit) else expr.ns
    if isinstance(expr, NumberLit):
        return int(expr.value)
    if isinstance(expr, Binary) and expr.op in {"+", "-"}:
        lhs, rhs = _time_value(expr.lhs, now_ns), _time_value(expr.rhs, now_ns)
        return lhs + rhs if expr.op == "+" else lhs - rhs
    raise TimeError("invalid time comparison")


def fix_times(expr: Expr | None, now_ns: int) -> Expr | None:
    """``expr`` with every comparison of ``time`` to an absolute integer of nanoseconds."""
    if expr is None or not isinstance(expr, Binary):
        return expr
    if expr.op in _COMPARISONS and _is_time(expr.lhs):
        return Binary(expr.op, expr.lhs, IntegerLit(_time_value(expr.rhs, now_ns)))
    if expr.op in _COMPARISONS and _is_time(expr.rhs):
        flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(expr.op, expr.op)
        return Binary(flipped, expr.rhs, IntegerLit(_time_value(expr.lhs, now_ns)))
    if expr.op in {"AND", "OR"}:
        lhs, rhs = fix_times(expr.lhs, now_ns), fix_times(expr.rhs, now_ns)
        assert lhs is not None
        assert rhs is not None
        return Binary(expr.op, lhs, rhs)
    return expr


@dataclass(frozen=True)
class TimeRange:
    """The times a condition selects, both ends included; unbounded ends are None."""

    start: int | None = None
    end: int | None = None

    def both(self, other: TimeRange) -> TimeRange:
        starts = [t for t in (self.start, other.start) if t is not None]
        ends = [t for t in (self.end, other.end) if t is not None]
        return TimeRange(max(starts) if starts else None, min(ends) if ends else None)


def time_range(expr: Expr | None) -> TimeRange:
    """The range of a condition whose times are fixed (:func:`fix_times`), from its
    comparisons of ``time`` joined by AND."""
    if not isinstance(expr, Binary):
        return TimeRange()
    if expr.op == "AND":
        return time_range(expr.lhs).both(time_range(expr.rhs))
    if _is_time(expr.lhs) and isinstance(expr.rhs, IntegerLit):
        value = expr.rhs.value
        return {
            ">": TimeRange(value + 1, None),
            ">=": TimeRange(value, None),
            "<": TimeRange(None, value - 1),
            "<=": TimeRange(None, value),
            "=": TimeRange(value, value),
        }.get(expr.op, TimeRange())
    return TimeRange()


def pinned(expr: Expr | None, key: str) -> frozenset[str] | None:
    """The values of tag ``key`` the condition restricts it to (``key = 'x'``, ORs of
    them, ANDed with anything), or None when it selects any value."""
    if not isinstance(expr, Binary):
        return None
    if expr.op == "AND":
        lhs, rhs = pinned(expr.lhs, key), pinned(expr.rhs, key)
        if lhs is None or rhs is None:
            return lhs if rhs is None else rhs
        return lhs & rhs
    if expr.op == "OR":
        lhs, rhs = pinned(expr.lhs, key), pinned(expr.rhs, key)
        return None if lhs is None or rhs is None else lhs | rhs
    if (
        expr.op == "="
        and isinstance(expr.lhs, VarRef)
        and expr.lhs.name == key
        and expr.lhs.type in {None, "tag"}
        and isinstance(expr.rhs, StringLit)
    ):
        return frozenset({expr.rhs.value})
    return None
