"""One pair's points, read from a shard's answer straight into the answer's JSON.
(The merge across shards is in :mod:`federation.router.stream`.)

A shard's chunk of ``SELECT "price", "exchange"`` (``epoch=ms``) is one MessagePack
object (what the router asks for: InfluxDB makes it for less CPU than JSON), or one
JSON line, whose values are ``[time,price,"exchange"]``. Every point of every cold
answer passes here, so a chunk of the plain shape is read in C (``_chunkreader.c``):
each point becomes the answer's element ``{"price":…,"time":"…","exchange":"…"}``, and
its time and exchange go to NumPy columns. From JSON the price is the shard's own text,
in one pass; from MessagePack it is a float64, which orjson prints (the shortest digits
that read back) and C lays out as InfluxDB's JSON does (:func:`go_number` is the same
rule in Python), so both give the same bytes. In Python, even with a C call for each
step (a split, a join, NumPy on the columns), that cost about half a microsecond a
point: half of the router's CPU per cold answer (docs/benchmarks.md).

Any other chunk (an exchange with an escape, an error, a column order of its own), and
anything the C reader declines, is read the general way (msgpack or ``json.loads``,
orjson and :func:`~federation.core.timefmt.iso_text`) into the same elements: an
element depends only on its point, never on the way it was read, so cached and uncached
answers are the same bytes; the tests hold the C reader to the general one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import partial
from itertools import pairwise
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
import orjson

from federation.core.influx import is_packed, parse_chunk
from federation.core.timefmt import iso_text
from federation.core.types import Series
from federation.router._chunkreader import elements, read_packed, read_values

COLUMNS = ["time", "price", "exchange"]
Ints = npt.NDArray[np.int64]
_NONE: Ints = np.zeros(0, dtype=np.int64)
_OPEN = b'{"price":'
# The plain shape, as InfluxDB 1.x writes a chunk of this statement (fields in the order
# of its structs); a chunk with "partial" is followed by another.
_START = (
    b'{"results":[{"statement_id":0,"series":[{"name":"price",'
    b'"columns":["time","price","exchange"],"values":['
)
_ENDS = (b"]}]}]}", b'],"partial":true}],"partial":true}]}')


def _number(text: str) -> Any:
    """An integer as JSON reads it, kept as its text past 64 bits (orjson's limit) and
    when it is -0 (a price's text, which the integer 0 would not keep)."""
    return int(text) if len(text) < 19 and text != "-0" else orjson.Fragment(text)


# The general reading: numbers keep the shard's text, as in the plain one.
_exact_loads = partial(json.loads, parse_float=orjson.Fragment, parse_int=_number)
_packed_loads = partial(msgpack.unpackb, raw=False)
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


class PriceRows:
    """Points of one pair, in columns: the answer's elements, each followed by a comma
    (``blob``), where each starts (``starts``, and one past the last), their times, and
    their exchanges as indexes (``codes``) into ``names``. ``in_order`` says whether
    they are in strictly increasing (time, exchange) order (sorted, and no two share a
    time and exchange), as each chunk is checked when read and kept through
    :meth:`take` and :meth:`joined`."""

    __slots__ = ("blob", "codes", "in_order", "names", "starts", "times")

    def __init__(
        self,
        blob: bytes = b"",
        starts: Ints | None = None,
        times: Ints | None = None,
        codes: Ints | None = None,
        names: Sequence[str] = (),
        *,
        in_order: bool = True,
    ) -> None:
        self.blob = blob
        self.starts = starts if starts is not None else np.zeros(1, dtype=np.int64)
        self.times = times if times is not None else _NONE
        self.codes = codes if codes is not None else _NONE
        self.names = tuple(names)
        self.in_order = in_order

    def __len__(self) -> int:
        return len(self.times)

    @property
    def exchanges(self) -> list[str]:
        return [self.names[c] for c in self.codes.tolist()]

    def take(self, count: int) -> PriceRows:
        """Remove the first ``count`` points and return them."""
        cut = int(self.starts[count])
        first = PriceRows(
            self.blob[:cut],
            self.starts[: count + 1],
            self.times[:count],
            self.codes[:count],
            self.names,
            in_order=self.in_order,
        )
        self.blob = self.blob[cut:]
        self.starts = self.starts[count:] - cut
        self.times, self.codes = self.times[count:], self.codes[count:]
        return first

    def extend(self, other: PriceRows) -> None:
        whole = PriceRows.joined([self, other])
        self.blob, self.starts, self.times = whole.blob, whole.starts, whole.times
        self.codes, self.names, self.in_order = whole.codes, whole.names, whole.in_order

    def encoded(self) -> bytes:
        """The elements joined by commas: to splice into the answer's array."""
        return self.blob[:-1]

    def points(self) -> list[tuple[int, Any, str]]:
        """The points as (epoch ms, price, exchange), the prices read back from the
        elements: what a client of the answer sees."""
        prices = [p["price"] for p in orjson.loads(b"[" + self.encoded() + b"]")]
        return list(zip(self.times.tolist(), prices, self.exchanges, strict=True))

    def ranks(self) -> Ints:
        """Each point's exchange as its place among the names sorted (a sort key: equal
        names, equal ranks)."""
        place = {name: i for i, name in enumerate(sorted(set(self.names)))}
        rank = np.array([place[name] for name in self.names], dtype=np.int64)
        return rank[self.codes] if len(self.codes) else _NONE

    @classmethod
    def joined(cls, runs: Sequence[PriceRows]) -> PriceRows:
        """The runs one after the other (their exchanges in one ``names``)."""
        runs = [run for run in runs if len(run)]
        if len(runs) <= 1:
            return runs[0] if runs else cls()
        names, codes = _common_names(runs)
        lengths = np.cumsum([0] + [len(run.blob) for run in runs[:-1]])
        starts = np.concatenate(
            [run.starts[:-1] + at for run, at in zip(runs, lengths, strict=True)]
            + [np.array([lengths[-1] + len(runs[-1].blob)])]
        )
        in_order = all(run.in_order for run in runs) and all(
            (a.times[-1], a.names[a.codes[-1]]) < (b.times[0], b.names[b.codes[0]])
            for a, b in pairwise(runs)
        )
        return cls(
            b"".join(run.blob for run in runs),
            starts,
            np.concatenate([run.times for run in runs]),
            np.concatenate(codes),
            names,
            in_order=in_order,
        )

    @classmethod
    def merged(cls, runs: Iterable[PriceRows]) -> PriceRows:
        """The points of every run in (time, exchange) order, one per (time, exchange):
        the last run's."""
        whole = cls.joined(list(runs))
        if whole.in_order:
            return whole
        ranks = whole.ranks()
        order = np.lexsort((ranks, whole.times))  # stable: equal keys keep run order
        times, ranks = whole.times[order], ranks[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = (times[1:] != times[:-1]) | (ranks[1:] != ranks[:-1])
        picked = order[last]
        ends = whole.starts[picked + 1].tolist()
        blob = whole.blob
        pieces = [blob[a:b] for a, b in zip(whole.starts[picked].tolist(), ends, strict=True)]
        lengths = whole.starts[picked + 1] - whole.starts[picked]
        return cls(
            b"".join(pieces),
            np.concatenate(([0], np.cumsum(lengths))),
            whole.times[picked],
            whole.codes[picked],
            whole.names,
        )


def _common_names(runs: Sequence[PriceRows]) -> tuple[tuple[str, ...], list[Ints]]:
    """One ``names`` for every run, and each run's codes into it."""
    first = runs[0].names
    if all(run.names == first for run in runs):
        return first, [run.codes for run in runs]
    index: dict[str, int] = {}
    codes = []
    for run in runs:
        mapping = np.array([index.setdefault(n, len(index)) for n in run.names], dtype=np.int64)
        codes.append(mapping[run.codes])
    return tuple(index), codes


def rows_of_chunk(shard: str, chunk: bytes) -> PriceRows:
    """A shard's chunk of a ``chunked=true`` answer (a MessagePack object, or a JSON
    line) as the answer's points, in the order the shard sent them; a shard's error
    raises as :func:`parse_chunk` says."""
    return _rows_of_packed(shard, chunk) if is_packed(chunk) else _rows_of_line(shard, chunk)


def _rows_of_packed(shard: str, chunk: bytes) -> PriceRows:
    read = read_packed(chunk)
    if read is not None:
        prices, times, codes, names, in_order = read
        # orjson prints the shortest text that reads back as each price (Ryu), as Go
        # does; elements() lays it out as Go's JSON does (no ".0", exponents past 1e21).
        printed = orjson.dumps(np.frombuffer(prices, np.float64), option=_NUMPY)
        made = elements(printed, times, codes, names)
        read_in_c = None if made is None else _c_rows(*made, times, codes, names, in_order)
        if read_in_c is not None:
            return read_in_c
    rows: list[list[Any]] = []
    for series in parse_chunk(shard, chunk, loads=_packed_loads, form="MessagePack"):
        rows.extend([t, go_number(p), e] for t, p, e in _columns(series))
    return _general(rows)


def go_number(value: Any) -> Any:
    """A value of a MessagePack answer as InfluxDB's JSON answer writes it: a float
    laid out as Go's encoding/json does (the shortest digits that read back, plain
    for 1e-6 <= |x| < 1e21 with no ".0", else ``1.5e-7`` / ``1e+21``), as its text;
    anything else as it is."""
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text, minus = "".join(map(str, digits)), "-" if sign else ""
    assert isinstance(exponent, int)  # finite
    point = len(text) + exponent  # the value is 0.text x 10^point
    if text == "0":
        out = "0"
    elif not -5 <= point <= 21:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        out = f"{mantissa}e{point - 1:+03d}" if point > 0 else f"{mantissa}e-{1 - point}"
    elif point <= 0:
        out = "0." + "0" * -point + text
    elif point >= len(text):
        out = text + "0" * (point - len(text))
    else:
        out = text[:point] + "." + text[point:]
    return orjson.Fragment(minus + out)


def _rows_of_line(shard: str, line: bytes) -> PriceRows:
    plain = _plain(line)
    if plain is not None:
        return plain
    rows: list[list[Any]] = []
    for series in parse_chunk(shard, line, loads=_exact_loads):
        rows.extend(_columns(series))
    return _general(rows)


def _plain(line: bytes) -> PriceRows | None:
    """The points of a chunk of the plain shape, or None when it is not of that shape (or
    holds what the C reader leaves to the general one)."""
    if not line.startswith(_START):
        return None
    end = next((e for e in _ENDS if line.endswith(e)), None)
    if end is None:
        return None
    read = read_values(memoryview(line)[len(_START) : len(line) - len(end)])
    return None if read is None else _c_rows(*read)


def _c_rows(
    blob: bytes, starts: bytes, times: bytes, codes: bytes, names: Sequence[bytes], in_order: bool
) -> PriceRows | None:
    """The points the C reader gave (its columns as int64 bytes), or None when a name is
    not UTF-8 (the general reading says what is wrong with it)."""
    try:
        text = [name.decode() for name in names]
    except UnicodeDecodeError:
        return None
    return PriceRows(
        blob,
        np.frombuffer(starts, np.int64),
        np.frombuffer(times, np.int64),
        np.frombuffer(codes, np.int64),
        text,
        in_order=in_order,
    )


def _assembled(
    prices: list[bytes],
    price_lengths: Ints,
    times: Ints,
    codes: Ints,
    exchanges: list[bytes],
    names: list[str],
) -> PriceRows:
    """Points from columns: each one's price (JSON text, and its length), time (epoch
    ms) and exchange (an index into ``exchanges``, their JSON text, and ``names``).
    Each element is made of three pieces, joined once: its price, its time, and its
    exchange with the opening of the next element (so no piece is the same constant for
    every point); a time is formatted once for each run of points that share it."""
    count = len(prices)
    changes = np.flatnonzero(times[1:] != times[:-1]) + 1
    run_of = np.zeros(count, dtype=np.int64)
    run_of[changes] = 1
    np.cumsum(run_of, out=run_of)
    run_times = times[np.concatenate(([0], changes))].tolist()
    text = iso_text(run_times)
    time_parts = [b',"time":"%s"' % text[t].encode() for t in run_times]
    exchange_parts = [b',"exchange":%s},%s' % (e, _OPEN) for e in exchanges]
    ends = np.array(exchange_parts, dtype=object)[codes]
    ends[-1] = ends[-1][: -len(_OPEN)]
    pieces: list[bytes] = [b""] * (3 * count)
    pieces[0::3] = prices
    pieces[1::3] = np.array(time_parts, dtype=object)[run_of].tolist()
    pieces[2::3] = ends.tolist()
    pieces[0] = _OPEN + prices[0]
    # Each element, with the comma after it: the opening, its price, time and exchange.
    lengths = price_lengths + _lengths(time_parts)[run_of] + _lengths(exchange_parts)[codes]
    starts = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    rows = PriceRows(b"".join(pieces), starts, times, codes, names)
    ranks = rows.ranks()
    later = times[1:] > times[:-1]
    rows.in_order = bool(np.all(later | ((times[1:] == times[:-1]) & (ranks[1:] > ranks[:-1]))))
    return rows


def _lengths(pieces: list[bytes]) -> Ints:
    return np.fromiter(map(len, pieces), np.int64, len(pieces))


def _columns(series: Series) -> list[list[Any]]:
    if series["columns"] == COLUMNS:
        return list(series["values"])
    index = [series["columns"].index(c) for c in COLUMNS]
    return [[v[i] for i in index] for v in series["values"]]


def _general(rows: list[list[Any]]) -> PriceRows:
    """Points from decoded rows, as elements byte for byte like :func:`_plain`'s."""
    if not rows:
        return PriceRows()
    exchanges: dict[bytes, int] = {}
    texts = [orjson.dumps(e) for _, _, e in rows]
    codes = np.fromiter((exchanges.setdefault(e, len(exchanges)) for e in texts), np.int64)
    prices = [orjson.dumps(p) for _, p, _ in rows]
    return _assembled(
        prices,
        _lengths(prices),
        np.array([t for t, _, _ in rows], dtype=np.int64),
        codes,
        list(exchanges),
        [name if isinstance(name := orjson.loads(e), str) else "" for e in exchanges],
    )


def rows_of(points: Iterable[tuple[int, Any, str]]) -> PriceRows:
    """Points from (epoch ms, price, exchange): what tests and benchmarks start from."""
    return _general([list(p) for p in points])
