"""InfluxQL text, built safely.

Every identifier goes through :func:`quote_ident` and every string literal through
:func:`quote_literal`, so no caller-supplied string reaches a shard unescaped (the
router validates its inputs as well; this is the second wall, not the only one).
Durations are rendered from parsed numbers, never copied from input.
"""

from __future__ import annotations

import re

from federation.core.durations import Duration

MEASUREMENT = "price"

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


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


def since(duration: Duration) -> str:
    """The WHERE condition selecting the window that ends now."""
    return f"time > now() - {duration.length}"


def where(duration: Duration, **tags: str | None) -> str:
    parts = [since(duration)]
    parts += [f"{quote_ident(k)} = {quote_literal(v)}" for k, v in tags.items() if v is not None]
    return " WHERE " + " AND ".join(parts)


def prices_query(pair: str, duration: Duration, exchange: str | None = None) -> str:
    """Every point of one pair in the window, in time order, with its exchange."""
    return (
        f"SELECT {quote_ident('price')}, {quote_ident('exchange')} "
        f"FROM {quote_ident(MEASUREMENT)}" + where(duration, pair=pair, exchange=exchange)
    )


def stddev_query(duration: Duration, exchange: str | None = None) -> str:
    """The sample standard deviation of price for every (exchange, pair) series."""
    return stddev_where(where(duration, exchange=exchange))


def stddev_where(where_clause: str) -> str:
    """:func:`stddev_query` with a WHERE clause of the caller's (`` WHERE ...``)."""
    return (
        f"SELECT STDDEV({quote_ident('price')}) FROM {quote_ident(MEASUREMENT)}"
        + where_clause
        + f" GROUP BY {quote_ident('exchange')}, {quote_ident('pair')}"
    )


def series_of_pair_query(pair: str, exchange: str | None = None) -> str:
    """The series keys of one pair (any time): tells an unknown pair from a quiet one."""
    query = f"SHOW SERIES FROM {quote_ident(MEASUREMENT)} WHERE {quote_ident('pair')} = " + (
        quote_literal(pair)
    )
    if exchange is not None:
        query += f" AND {quote_ident('exchange')} = {quote_literal(exchange)}"
    return query


def create_database(name: str) -> str:
    return f"CREATE DATABASE {quote_ident(name)}"
