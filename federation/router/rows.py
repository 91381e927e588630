"""One pair's points, read from a shard's answer straight into the answer's JSON.
(The merge across shards is in :mod:`federation.router.stream`.)

A shard's chunk of ``SELECT "price", "exchange"`` (``epoch=ms``) is one JSON line whose
values are ``[time,price,"exchange"]``. Every point of every cold answer passes here,
so a chunk of the plain shape becomes the answer's elements
``{"price":…,"time":"…","exchange":"…"}`` with no Python object per value: its values
are split on their commas (in C), a time or an exchange is formatted once however many
points share it (a tick's exchanges share its time; a pair has a few dozen exchanges),
and a price keeps the shard's own text: a number is never parsed and printed again.

Any other chunk (an exchange with an escape or a comma, an error, a column order of
its own) is read the general way into the same elements: an element depends only on
its point, never on the way it was read, so cached and uncached answers are the same
bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import partial
from itertools import accumulate, chain, islice
from operator import lt
from typing import Any

import orjson

from federation.core.influx import parse_chunk
from federation.core.timefmt import iso_text
from federation.core.types import Series

COLUMNS = ["time", "price", "exchange"]
# An element's pieces: its price, its time, and its exchange with the opening of the next
# element (so that no piece is the same constant for every point).
PARTS = 3
_OPEN = b'{"price":'
_NEXT = b"," + _OPEN
# The plain shape, as InfluxDB 1.x writes a chunk of this statement (fields in the order
# of its structs); a chunk with "partial" is followed by another.
_START = (
    b'{"results":[{"statement_id":0,"series":[{"name":"price",'
    b'"columns":["time","price","exchange"],"values":['
)
_ENDS = (b"]}]}]}", b'],"partial":true}],"partial":true}]}')
_TIME = re.compile(rb"\[-?[0-9]{1,18}")  # the first value of a row: epoch ms
_EXCHANGE = re.compile(rb'"[^"]*"\]')  # the last: a string with no escape


def _number(text: str) -> Any:
    """An integer as JSON reads it, kept as its text past 64 bits (orjson's limit)."""
    return int(text) if len(text) < 19 else orjson.Fragment(text)


# The general reading: numbers keep the shard's text, as in the plain one.
_exact_loads = partial(json.loads, parse_float=orjson.Fragment, parse_int=_number)


class PriceRows:
    """Points of one pair in (time, exchange) order: each one's time and exchange (to
    merge and cut by) and its element of the answer, in ``PARTS`` pieces (joined only
    when sent, so that cutting and merging move references, not bytes)."""

    __slots__ = ("exchanges", "parts", "times")

    def __init__(
        self,
        times: list[int] | None = None,
        exchanges: list[str] | None = None,
        parts: list[bytes] | None = None,
    ) -> None:
        self.times = times if times is not None else []
        self.exchanges = exchanges if exchanges is not None else []
        self.parts = parts if parts is not None else []

    def __len__(self) -> int:
        return len(self.times)

    def take(self, count: int) -> PriceRows:
        """Remove the first ``count`` points and return them."""
        first = PriceRows(self.times[:count], self.exchanges[:count], self.parts[: PARTS * count])
        del self.times[:count], self.exchanges[:count], self.parts[: PARTS * count]
        return first

    def extend(self, other: PriceRows) -> None:
        self.times.extend(other.times)
        self.exchanges.extend(other.exchanges)
        self.parts.extend(other.parts)

    def ordered(self) -> bool:
        """Whether the points are in strictly increasing (time, exchange) order: sorted,
        and no two share a time and exchange (a C pass, cheaper than sorting)."""
        keys = list(zip(self.times, self.exchanges, strict=True))
        return all(map(lt, keys, islice(keys, 1, None)))

    def encoded(self) -> bytes:
        """The elements joined by commas: to splice into the answer's array."""
        if not self.parts:
            return b""
        return _OPEN + b"".join(self.parts)[: -len(_NEXT)]

    def points(self) -> list[tuple[int, Any, str]]:
        """The points as (epoch ms, price, exchange), the prices read back from the
        elements: what a client of the answer sees."""
        prices = [p["price"] for p in orjson.loads(b"[" + self.encoded() + b"]")]
        return list(zip(self.times, prices, self.exchanges, strict=True))

    def starts(self) -> list[int]:
        """Where each element starts in :meth:`encoded`, and one past its end (+ 1):
        each element's pieces are as long as it and the comma after it."""
        return list(accumulate(map(len, self.parts), initial=0))[::PARTS]

    @classmethod
    def merged(cls, runs: Iterable[PriceRows]) -> PriceRows:
        """The points of every run in (time, exchange) order, one per (time, exchange):
        the last run's (as a dict keeps the last value put in a key's first place)."""
        whole = cls()
        for run in runs:
            whole.extend(run)
        keys = list(zip(whole.times, whole.exchanges, strict=True))
        order = sorted(range(len(keys)), key=keys.__getitem__)
        picked = list(dict(zip(map(keys.__getitem__, order), order, strict=True)).values())
        parts = whole.parts
        return cls(
            [whole.times[i] for i in picked],
            [whole.exchanges[i] for i in picked],
            list(chain.from_iterable(parts[PARTS * i : PARTS * i + PARTS] for i in picked)),
        )


def rows_of_chunk(shard: str, line: bytes) -> PriceRows:
    """A shard's chunk (one line of a ``chunked=true`` answer) as the answer's points, in
    the order the shard sent them; a shard's error raises as :func:`parse_chunk` says."""
    plain = _plain(line)
    if plain is not None:
        return plain
    rows: list[list[Any]] = []
    for series in parse_chunk(shard, line, loads=_exact_loads):
        rows.extend(_columns(series))
    return _general(rows)


def _plain(line: bytes) -> PriceRows | None:
    """The points of a chunk of the plain shape, or None when it is not of that shape."""
    if not line.startswith(_START) or b"\\" in line:
        return None
    end = next((e for e in _ENDS if line.endswith(e)), None)
    if end is None:
        return None
    body = line[len(_START) : len(line) - len(end)]
    values = body.split(b",")
    count, rest = divmod(len(values), 3)
    # With no escape, every quote delimits a string: two per row means each string is
    # the exchange closing its row, so every comma split on separates two values.
    if rest or body.count(b'"') != 2 * count:
        return None
    heads, prices, tails = values[0::3], values[1::3], values[2::3]
    distinct_heads = dict.fromkeys(heads)
    distinct_tails = dict.fromkeys(tails)
    if not all(map(_TIME.fullmatch, distinct_heads)) or not all(
        map(_EXCHANGE.fullmatch, distinct_tails)
    ):
        return None
    times = [int(head[1:]) for head in distinct_heads]
    text = iso_text(times)
    time_of = dict(zip(distinct_heads, times, strict=True))
    time_part = {head: b',"time":"%s"' % text[t].encode() for head, t in time_of.items()}
    exchange_of = {tail: tail[1:-2].decode() for tail in distinct_tails}
    exchange_part = {tail: b',"exchange":%s}%s' % (tail[:-1], _NEXT) for tail in distinct_tails}
    parts = list(
        chain.from_iterable(
            zip(
                prices,
                map(time_part.__getitem__, heads),
                map(exchange_part.__getitem__, tails),
                strict=True,
            )
        )
    )
    return PriceRows(
        list(map(time_of.__getitem__, heads)), list(map(exchange_of.__getitem__, tails)), parts
    )


def _columns(series: Series) -> list[list[Any]]:
    if series["columns"] == COLUMNS:
        return list(series["values"])
    index = [series["columns"].index(c) for c in COLUMNS]
    return [[v[i] for i in index] for v in series["values"]]


def _general(rows: list[list[Any]]) -> PriceRows:
    """Points from decoded rows, as elements byte for byte like :func:`_plain`'s."""
    text = iso_text(t for t, _, _ in rows)
    parts: list[bytes] = []
    for t, price, exchange in rows:
        parts += (
            orjson.dumps(price),
            b',"time":"%s"' % text[t].encode(),
            b',"exchange":%s}%s' % (orjson.dumps(exchange), _NEXT),
        )
    return PriceRows(
        [t for t, _, _ in rows], [e if isinstance(e, str) else "" for _, _, e in rows], parts
    )


def rows_of(points: Iterable[tuple[int, Any, str]]) -> PriceRows:
    """Points from (epoch ms, price, exchange): what tests and benchmarks start from."""
    return _general([list(p) for p in points])
