"""A fake shard for the unit tests: the :class:`~federation.core.influx.ShardClient`
interface over points held in memory, as httpx's MockTransport fakes a transport.

It keeps what ``write`` receives (line protocol, read by the small reader below; lines
of other measurements are kept as text in ``lines`` only) and
answers each catalogue :class:`~federation.core.influxql.Statement` by its kind and
arguments, computed from those points with pandas, in the shapes InfluxDB 1.6 answers
(tests/integration/test_catalogue_live.py asks real influxd the same statements):
series with name, tags, columns and values; times at the asked epoch; ``partial`` on
every chunk of a chunked series but its last; STDDEV the sample deviation (n - 1),
null below two points; GROUP BY time buckets aligned to the epoch (and shifted by
the offset), fill(none); an
aggregate without GROUP BY time stamped with the start of the range. ``now()`` is the
injected ``now_ms``. The front door's statements are answered from their trees by
:mod:`tests.fakequery`. The statement text is never read: a kind without an answer here
raises NotImplementedError naming it, so no test silently takes a wrong branch.

Faults, settable at any time: ``down`` (every call raises ShardUnavailable),
``delay_s`` (awaited before every answer), ``slow_kinds`` and ``failing_kinds`` (per
statement kind), ``fail_after_chunks`` and ``stall_after_chunks`` (mid-stream),
``chunk_size`` (overrides the caller's), ``reject_writes`` (400), ``write_answers``
(HTTP statuses the next writes get, one each, mapped as the real client maps them: 5xx
ShardUnavailable, 4xx ShardRejected) and ``has_database`` (False: writes are 404 and
queries fail until ``create_database``). ``open_streams`` counts the chunked answers
begun and not yet closed (a caller that abandons a stream must close it).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import msgpack
import orjson
import pandas as pd

from federation.core import influxql, rollup
from federation.core import influxql_ast as tree
from federation.core.durations import Duration
from federation.core.errors import QueryError, ShardRejected, ShardUnavailable
from federation.core.influx import Ping, parse_series_key
from federation.core.influxql import MEASUREMENT, Statement, TimeRange
from federation.core.lineproto import batches, escape_tag, to_lines
from federation.core.shardmap import Shard
from federation.core.types import Series
from tests import fakequery

NS = {"n": 1, "ns": 1, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
DTYPES = {
    "time": "int64",
    "exchange": "object",
    "pair": "object",
    "price": "float64",
    "volume": "float64",
}
COLUMNS = list(DTYPES)
END_OF_TIME_MS = 2**63 // NS["ms"]  # past InfluxDB's last time: no upper bound
TAGS = ["exchange", "pair"]
Answer = list[list[Series]]
_OTHER_POINT = re.compile(r"\S+ [^ =]+=\S")  # a line of some measurement, with fields


def _split_unescaped(text: str, sep: str) -> list[str]:
    """``text`` cut at every ``sep`` not escaped by a backslash (escapes kept)."""
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_line(line: str, precision: str) -> dict[str, Any]:
    """One point of line protocol as (time ns, exchange, pair, price, volume);
    ValueError saying why a line cannot be read."""
    parts = _split_unescaped(line, " ")
    if len(parts) != 3:
        raise ValueError("expected a key, fields and a time")
    key, fields_text, stamp = parts
    measurement = _split_unescaped(key, ",")[0]
    tags = parse_series_key(key)
    if measurement != MEASUREMENT or set(tags) != set(TAGS):
        raise ValueError(f"not a {MEASUREMENT} point with tags {TAGS}")
    fields = {}
    for field in fields_text.split(","):
        name, _, value = field.partition("=")
        fields[name] = float(value.removesuffix("i"))
    if "price" not in fields or set(fields) - {"price", "volume"}:
        raise ValueError("fields must be price and, optionally, volume")
    return {
        "time": int(stamp) * NS[precision],
        **tags,
        "price": fields["price"],
        "volume": fields.get("volume", math.nan),
    }


_ROLLUP_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,]+)')


def parse_rollup_line(line: str, precision: str) -> tuple[str, int, dict[str, Any]]:
    """A minute rollup line (:mod:`federation.core.rollup`): its tags as a key, its time
    in ns and its fields."""
    key, rest = line.split(" ", 1)
    fields_text, stamp = rest.rsplit(" ", 1)
    fields: dict[str, Any] = {}
    for name, value in _ROLLUP_FIELD.findall(fields_text):
        if value.startswith('"'):
            fields[name] = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif value.endswith("i"):
            fields[name] = int(value[:-1])
        else:
            fields[name] = float(value)
    return key, int(stamp) * NS[precision], fields


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


class FakeShard:
    def __init__(
        self, shard: Shard | str, database: str = "crypto", *, now_ms: int = 1_700_000_000_000
    ) -> None:
        self.shard = shard if isinstance(shard, Shard) else Shard(shard, f"http://{shard}:8086")
        self.name = self.shard.name
        self.database = database
        self.now_ms = now_ms
        self._points = pd.DataFrame({c: pd.Series(dtype=t) for c, t in DTYPES.items()})
        # Faults.
        self.down = False
        self.delay_s = 0.0
        self.slow_kinds: dict[str, float] = {}
        self.failing_kinds: dict[str, Exception] = {}
        self.fail_after_chunks: int | None = None
        self.stall_after_chunks: int | None = None
        self.stall_s = 3600.0  # how long a stalled stream waits before its next chunk
        self.chunk_size: int | None = None
        self.reject_writes = False
        self.write_answers: list[int] = []
        self.has_database = True
        # What it was sent.
        self.bodies: list[bytes] = []  # every body stored, in order
        self.lines: list[str] = []  # their lines
        self.statements: list[Statement] = []
        self.created = 0  # create_database calls that succeeded
        self.open_streams = 0  # chunked answers begun and not yet closed
        self.points_written = 0  # every point stored, rewrites too (InfluxDB's writePointsOk)
        # The minute rollup by (series key, time ns): its fields.
        self.rollup_rows: dict[tuple[str, int], dict[str, Any]] = {}

    # Points.

    def seed(self, frame: pd.DataFrame) -> FakeShard:
        """Hold the rows of a snapshot frame (time in ms), as if written."""
        for body in batches(to_lines(frame), 10_000):
            self._store(body, "ms")
        return self

    @property
    def points(self) -> pd.DataFrame:
        """What the shard holds, time in epoch ms, in (time, exchange, pair) order."""
        return self._points.assign(time=self._points["time"] // NS["ms"])

    def _store(self, body: bytes, precision: str) -> None:
        rows = []
        for line in body.decode().splitlines():
            if line.startswith(f"{rollup.MEASUREMENT},"):
                key, time_ns, fields = parse_rollup_line(line, precision)
                self.rollup_rows[(key, time_ns)] = fields  # a rewrite replaces, as in InfluxDB
                self.points_written += 1
                continue
            if _OTHER_POINT.match(line) and not line.startswith(f"{MEASUREMENT},"):
                self.points_written += 1
                continue  # another measurement: kept in ``lines`` only, never queried
            try:
                rows.append(parse_line(line, precision))
            except (ValueError, KeyError) as exc:
                raise ShardRejected(
                    self.name, f"POST /write answered 400: unable to parse {line!r}: {exc}", 400
                ) from None
        new = pd.DataFrame(rows, columns=COLUMNS).astype(DTYPES)
        self.points_written += len(new)
        frame = new if self._points.empty else pd.concat([self._points, new], ignore_index=True)
        # A point is unique by series and time: a second write of it replaces the first.
        frame = frame.drop_duplicates(["time", *TAGS], keep="last")
        self._points = frame.sort_values(["time", *TAGS], kind="mergesort", ignore_index=True)

    # The ShardClient interface.

    async def _answering(self, kind: str | None) -> None:
        if self.down:
            raise ShardUnavailable(self.name, "connection refused")
        delay = self.delay_s + self.slow_kinds.get(kind or "", 0.0)
        if delay:
            await asyncio.sleep(delay)
        if kind in self.failing_kinds:
            raise self.failing_kinds[kind]

    async def ping(self) -> Ping:
        await self._answering(None)
        return Ping(version="1.6.7", latency_s=0.0)

    async def write(self, body: bytes, precision: str = "ms") -> None:
        await self._answering(None)
        if not self.has_database:
            raise ShardRejected(
                self.name, f'POST /write answered 404: database not found: "{self.database}"', 404
            )
        if self.write_answers:
            status = self.write_answers.pop(0)
            message = f"POST /write answered {status}: refused"
            if status >= 500:
                raise ShardUnavailable(self.name, message)
            raise ShardRejected(self.name, message, status)
        if self.reject_writes:
            raise ShardRejected(self.name, "POST /write answered 400: refused", 400)
        self._store(body, precision)
        self.bodies.append(body)
        self.lines.extend(body.decode().splitlines())

    async def query(self, statement: Statement, *, epoch: str = "ms") -> Answer:
        await self._answering(statement.kind)
        return self._answer(statement, epoch)

    async def query_chunks(
        self, statement: Statement, *, epoch: str = "ms", chunk_size: int = 10_000
    ) -> AsyncGenerator[list[Series], None]:
        self.open_streams += 1
        try:
            async with contextlib.aclosing(self._chunks(statement, epoch, chunk_size)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            self.open_streams -= 1

    def query_lines(
        self, statement: Statement, *, epoch: str = "ms", chunk_size: int = 10_000
    ) -> AsyncGenerator[bytes, None]:
        """The chunks as InfluxDB writes them: a JSON line each, ``partial`` on all but
        the last, at the series and at the result, fields in InfluxDB's order."""
        return self._written(statement, epoch, chunk_size, orjson.dumps)

    def query_packed(
        self, statement: Statement, *, epoch: str = "ms", chunk_size: int = 10_000
    ) -> AsyncGenerator[bytes, None]:
        """The chunks as :meth:`query_lines`, in MessagePack (floats as float64)."""
        return self._written(statement, epoch, chunk_size, msgpack.packb)

    async def _written(
        self, statement: Statement, epoch: str, chunk_size: int, dumps: Callable[[Any], bytes]
    ) -> AsyncGenerator[bytes, None]:
        lines = self.query_chunks(statement, epoch=epoch, chunk_size=chunk_size)
        async with contextlib.aclosing(lines) as chunks:
            async for chunk in chunks:
                result: dict[str, Any] = {"statement_id": 0}
                if chunk:
                    result["series"] = [_in_influx_order(s) for s in chunk]
                    if chunk[-1].get("partial"):
                        result["partial"] = True
                yield dumps({"results": [result]})

    async def _chunks(
        self, statement: Statement, epoch: str, chunk_size: int
    ) -> AsyncGenerator[list[Series], None]:
        await self._answering(statement.kind)
        size = self.chunk_size or chunk_size
        chunks: list[list[Series]] = []
        for series in self._answer(statement, epoch)[0]:
            values = series["values"]
            for start in range(0, len(values), size):
                chunk: Series = {**series, "values": values[start : start + size]}
                if start + size < len(values):
                    chunk["partial"] = True
                chunks.append([chunk])
        for i, chunk_series in enumerate(chunks or [[]]):
            if i == self.fail_after_chunks:
                raise ShardUnavailable(self.name, "GET /query failed: connection reset")
            if i == self.stall_after_chunks:
                await asyncio.sleep(self.stall_s)
            yield chunk_series

    async def execute(self, statement: Statement) -> Answer:
        await self._answering(statement.kind)
        self.statements.append(statement)
        if statement.kind != "create_database":
            raise NotImplementedError(f"FakeShard cannot execute {statement.kind!r}")
        if statement.args["name"] == self.database:
            self.has_database = True
            self.created += 1
        return [[]]

    async def create_database(self) -> None:
        await self.execute(influxql.create_database(self.database))

    # Answers, by statement kind.

    def _answer(self, statement: Statement, epoch: str) -> Answer:
        self.statements.append(statement)
        answer = _ANSWERS.get(statement.kind)
        if answer is None:
            raise NotImplementedError(f"FakeShard has no answer for {statement.kind!r}")
        if not self.has_database:
            raise QueryError(self.name, f"database not found: {self.database}")
        return answer(self, NS[epoch], **statement.args)

    def _select(
        self,
        *,
        since: Duration | int | None = None,
        span: TimeRange | None = None,
        **tags: str | None,
    ) -> pd.DataFrame:
        """The points in the window ending now (``since``: a Duration or seconds) or in
        ``span``, with these tag values."""
        frame = self._points
        times = frame["time"]
        keep = pd.Series(True, index=frame.index)
        if since is not None:
            seconds = since.seconds if isinstance(since, Duration) else since
            keep &= times > self.now_ms * NS["ms"] - seconds * NS["s"]
        if span is not None:
            start, end = span.start_ms * NS["ms"], span.end_ms * NS["ms"]
            keep &= (times >= start) if span.start_inclusive else (times > start)
            keep &= (times <= end) if span.end_inclusive else (times < end)
        for tag, value in tags.items():
            if value is not None:
                keep &= frame[tag] == value
        return frame[keep]

    def _start_ns(self, since: Duration | None = None, span: TimeRange | None = None) -> int:
        if since is not None:
            return self.now_ms * NS["ms"] - since.seconds * NS["s"]
        return 0 if span is None else span.start_ms * NS["ms"]

    def _prices(self, unit: int, pair: str, duration: Duration, exchange: str | None) -> Answer:
        return _price_rows(self._select(since=duration, pair=pair, exchange=exchange), unit)

    def _prices_range(self, unit: int, pair: str, start_ms: int, end_ms: int | None) -> Answer:
        end = END_OF_TIME_MS if end_ms is None else end_ms
        rows = self._select(span=TimeRange(start_ms, end), pair=pair)
        return _price_rows(rows, unit)

    def _stddev(self, unit: int, duration: Duration, exchange: str | None) -> Answer:
        rows = self._select(since=duration, exchange=exchange)
        start = self._start_ns(since=duration)
        return [_aggregate(rows, {"stddev": _stddev}, unit, start, by_series=True)]

    def _stddev_range(self, unit: int, span: TimeRange) -> Answer:
        rows = self._select(span=span)
        start = self._start_ns(span=span)
        return [_aggregate(rows, {"stddev": _stddev}, unit, start, by_series=True)]

    def _moments(self, unit: int, span: TimeRange, bucket_s: int) -> Answer:
        aggregates = {"count": _count("price"), "mean": _mean, "stddev": _stddev}
        start, bucket = self._start_ns(span=span), bucket_s * NS["s"] or None
        rows = self._select(span=span)
        return [
            _aggregate(
                rows, aggregates, unit, start, by_series=True, bucket_ns=bucket, offset_ns=NS["u"]
            )
        ]

    def _bucket_counts(self, unit: int, span: TimeRange, bucket_s: int) -> Answer:
        rows = self._select(span=span)
        aggregates = {"count": _count("price")}
        bucket = bucket_s * NS["s"]
        return [
            _aggregate(
                rows, aggregates, unit, 0, by_series=False, bucket_ns=bucket, offset_ns=NS["u"]
            )
        ]

    def _count(self, unit: int, span: TimeRange) -> Answer:
        rows, start = self._select(span=span), self._start_ns(span=span)
        return [_aggregate(rows, {"count": _count("price")}, unit, start, by_series=False)]

    def _points_raw(self, unit: int, span: TimeRange) -> Answer:
        """Every point in the span with its tags, one series, in (time, series) order."""
        rows = self._select(span=span).sort_values(["time", "exchange", "pair"], kind="mergesort")
        columns = ("time", "price", "exchange", "pair")
        times, prices, exchanges, pairs = (rows[c].tolist() for c in columns)
        values = [
            [t // unit, p, e, q] for t, p, e, q in zip(times, prices, exchanges, pairs, strict=True)
        ]
        return [[_series(list(columns), values)] if values else []]

    def _rollup_query(self, unit: int, span: TimeRange, minutes: tuple[int, ...]) -> Answer:
        start, end = span.start_ms * NS["ms"], span.end_ms * NS["ms"]
        slots = {rollup.slot(m) for m in minutes}
        columns = ["time", "exchange", "pair", "n", "mean", "m2", "rows", "points", "late"]
        by_kind: dict[str, list[tuple[int, list[Any]]]] = {}
        for (key, time_ns), fields in self.rollup_rows.items():
            inside = (time_ns >= start) if span.start_inclusive else (time_ns > start)
            inside &= (time_ns <= end) if span.end_inclusive else (time_ns < end)
            tags = parse_series_key(key)
            if inside and (tags["kind"] != "series" or len(slots) >= 60 or tags["slot"] in slots):
                values = [time_ns // unit, *(fields.get(c) for c in columns[1:])]
                by_kind.setdefault(tags["kind"], []).append((time_ns, values))
        return [
            [
                _series(columns, [v for _, v in sorted(rows, key=lambda r: r[0])], kind=kind)
                for kind, rows in sorted(by_kind.items())
            ]
        ]

    def _write_stats(self, unit: int) -> Answer:
        """InfluxDB's ``shard`` statistics: one storage shard of this database, whose
        ``writePointsOk`` counts every point written (a rewrite of a stored one too)."""
        columns = ["writePointsDropped", "writePointsOk", "writeReq"]
        values = [[0, self.points_written, len(self.bodies)]]
        tags = {"database": self.database, "engine": "tsm1", "id": "1"}
        return [[{"name": "shard", "tags": tags, "columns": columns, "values": values}]]

    def _buckets(self, unit: int, start_ms: int, end_ms: int, bucket_s: int) -> Answer:
        rows = self._select(span=TimeRange(start_ms, end_ms))
        aggregates = {
            "price_sum": _sum("price"),
            "price_count": _count("price"),
            "volume_sum": _sum("volume"),
            "volume_count": _count("volume"),
        }
        bucket = bucket_s * NS["s"]
        return [_aggregate(rows, aggregates, unit, 0, by_series=True, bucket_ns=bucket)]

    def _last_prices(self, unit: int, window_s: int) -> Answer:
        rows = self._select(since=window_s).sort_values("time", kind="mergesort")
        last = rows.groupby(TAGS).tail(1).sort_values(TAGS)
        return [
            [
                _series(["time", "last"], [[int(t) // unit, float(p)]], exchange=e, pair=pair)
                for t, p, e, pair in last[["time", "price", *TAGS]].itertuples(index=False)
            ]
        ]

    def _front_select(self, unit: int, select: tree.Select) -> Answer:
        return [self._front(unit, fakequery.select(self._points, select))]

    def _front_selects(self, unit: int, selects: tuple[tree.Select, ...]) -> Answer:
        return [self._front(unit, fakequery.select(self._points, s)) for s in selects]

    def _front_show(self, unit: int, show: tree.Show) -> Answer:
        return [fakequery.show(self._points, show)]

    @staticmethod
    def _front(unit: int, answer: list[Series]) -> list[Series]:
        for series in answer:
            series["values"] = [[row[0] // unit, *row[1:]] for row in series["values"]]
        return answer

    def _series_keys(
        self, unit: int, pair: str | None = None, exchange: str | None = None
    ) -> Answer:
        rows = self._select(pair=pair, exchange=exchange).drop_duplicates(TAGS)
        keys = sorted(
            f"{MEASUREMENT},exchange={escape_tag(e)},pair={escape_tag(p)}"
            for e, p in zip(rows["exchange"].tolist(), rows["pair"].tolist(), strict=True)
        )
        if not keys:
            return [[]]
        return [[{"columns": ["key"], "values": [[k] for k in keys]}]]


_ANSWERS: Mapping[str, Callable[..., Answer]] = {
    "prices_query": FakeShard._prices,
    "prices_range_query": FakeShard._prices_range,
    "stddev_query": FakeShard._stddev,
    "stddev_range_query": FakeShard._stddev_range,
    "moments_query": FakeShard._moments,
    "bucket_counts_query": FakeShard._bucket_counts,
    "count_query": FakeShard._count,
    "points_query": FakeShard._points_raw,
    "write_stats_query": FakeShard._write_stats,
    "rollup_query": FakeShard._rollup_query,
    "buckets_query": FakeShard._buckets,
    "last_prices_query": FakeShard._last_prices,
    "series_query": FakeShard._series_keys,
    "series_of_pair_query": FakeShard._series_keys,
    "census_query": FakeShard._series_keys,
    "front_select": FakeShard._front_select,
    "front_selects": FakeShard._front_selects,
    "front_show": FakeShard._front_show,
}
KINDS = frozenset(_ANSWERS)  # the statement kinds a FakeShard answers


def _in_influx_order(series: Series) -> dict[str, Any]:
    order = ("name", "tags", "columns", "values", "partial")
    return {key: series[key] for key in order if key in series}  # type: ignore[literal-required]


def _series(columns: list[str], values: list[list[Any]], **tags: str) -> Series:
    series: Series = {"name": MEASUREMENT, "columns": columns, "values": values}
    if tags:
        series["tags"] = tags
    return series


def _price_rows(rows: pd.DataFrame, unit: int) -> Answer:
    """A ``SELECT price, exchange`` answer: the rows in (time, exchange) order."""
    rows = rows.sort_values(["time", "exchange"], kind="mergesort")
    times, prices, exchanges = (rows[c].tolist() for c in ("time", "price", "exchange"))
    values = [[t // unit, p, e] for t, p, e in zip(times, prices, exchanges, strict=True)]
    return [[_series(["time", "price", "exchange"], values)] if values else []]


def _stddev(points: pd.DataFrame) -> float | None:
    return _value(points["price"].std(ddof=1))  # NaN, so null, below two points


def _mean(points: pd.DataFrame) -> float | None:
    return _value(points["price"].mean())


def _count(column: str) -> Callable[[pd.DataFrame], int | None]:
    # A field without values in a bucket other fields fill is null there, even for COUNT.
    return lambda points: int(points[column].count()) or None


def _sum(column: str) -> Callable[[pd.DataFrame], float | None]:
    return lambda points: _value(points[column].sum(min_count=1))


def _aggregate(
    rows: pd.DataFrame,
    aggregates: Mapping[str, Callable[[pd.DataFrame], object]],
    unit: int,
    start_ns: int,
    *,
    by_series: bool,
    bucket_ns: int | None = None,
    offset_ns: int = 0,
) -> list[Series]:
    """One series per (exchange, pair), or one for all; a row per epoch-aligned bucket
    (shifted by ``offset_ns``, as ``GROUP BY time(b, offset)``) holding points
    (fill(none)), or one row stamped ``start_ns`` without buckets."""
    if rows.empty:
        return []
    if bucket_ns:
        buckets = (rows["time"] - offset_ns) // bucket_ns * bucket_ns + offset_ns
    else:
        buckets = start_ns
    rows = rows.assign(bucket=buckets)
    groups = rows.groupby(TAGS, sort=True) if by_series else [((), rows)]
    out = []
    for key, group in groups:
        values = [
            [int(bucket) // unit, *(f(points) for f in aggregates.values())]
            for bucket, points in group.groupby("bucket", sort=True)
        ]
        tags = dict(zip(TAGS, key, strict=True)) if by_series else {}
        out.append(_series(["time", *aggregates], values, **tags))
    return out


def connect_to(
    fakes: dict[str, FakeShard], now_ms: int = 1_700_000_000_000
) -> Callable[[Shard, str], FakeShard]:
    """A client factory for ``create_app``: each shard's fake by name; a shard not seen
    before gets a new, empty one (a map that grows)."""

    def connect(shard: Shard, database: str) -> FakeShard:
        if shard.name not in fakes:
            fakes[shard.name] = FakeShard(shard, database, now_ms=now_ms)
        return fakes[shard.name]

    return connect
