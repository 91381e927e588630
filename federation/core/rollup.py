"""The minute rollup: per-minute moments of the prices the ingester wrote to a shard,
written beside them in a few series, so that a rank refresh reads ~one row per series a
minute from few series, whatever the tick rate and however many routers read it.

What a refresh costs influxd 1.6 is mostly per series a statement touches, so the rows
of a shard's minute are one series (``kind=series``, ``slot`` its minute of the hour; a
minute of more than ``ROWS_PER_PART`` series spreads over ``part`` 1, 2, ...), each row
a series' moments at its own millisecond of the minute. Per shard, in the order the
ingester writes them (the same queue as its prices: spooled and replayed with them,
never re-dealt, since they carry no ``pair`` tag)::

    price_moments,kind=series,part=0,slot=07 exchange="kraken",pair="btcusd",n=1i,... <m+1+i>
    price_moments,kind=done rows=<k>i,points=<Σn>i <m + 1m>
    price_moments,kind=tick points=<P>i,late=<L>i <t>

- the *series* rows of minute ``m`` (points in (m, m + 1m], the rank table's minute),
  one per series the shard was sent points of, and its *done* row, written at the
  first tick at or after m + 1m, and only when the minute is whole: the ingester ticked
  from its start (a restart mid-minute writes none), and every write into it was
  stored or spooled (none lost or refused for good);
- a *tick* row per tick that wrote to the shard: ``points`` it wrote into minutes not
  rolled up yet, ``late`` into minutes already rolled up (their rollup no longer tells
  the whole minute: the rank table's write account sees them as late points).

A minute is *complete on a shard* when its done row is there with as many series rows
as it says. Anything else (no ingester, one that lags, another writer) and the rank
table reads the shards as before: the rollup is an index of what one writer wrote,
never trusted past what it says of itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from federation.core.lineproto import string_field
from federation.core.moments import COLUMNS
from federation.core.types import Series

MEASUREMENT = "price_moments"
MINUTE_MS = 60_000
ROWS_PER_PART = MINUTE_MS - 1  # series rows of one minute in one series: a millisecond each


def minute_lines(minute: int, moments: pd.DataFrame) -> list[str]:
    """The series rows and the done row of ``minute`` for one shard, from its moments
    (columns exchange, pair, n, mean, m2; one row per series)."""
    rows = moments.sort_values(["exchange", "pair"], kind="mergesort")
    lines = []
    for i, (exchange, pair, n, mean, m2) in enumerate(
        zip(
            rows["exchange"].tolist(),
            rows["pair"].tolist(),
            rows["n"].tolist(),
            rows["mean"].tolist(),
            rows["m2"].tolist(),
            strict=True,
        )
    ):
        part, offset = divmod(i, ROWS_PER_PART)
        lines.append(
            f"{MEASUREMENT},kind=series,part={part},slot={slot(minute)}"
            f" exchange={string_field(exchange)},pair={string_field(pair)},n={int(n)}i,"
            f"mean={float(mean)!r},m2={float(m2)!r} {minute + 1 + offset}"
        )
    points = int(rows["n"].sum()) if len(rows) else 0
    lines.append(f"{MEASUREMENT},kind=done rows={len(rows)}i,points={points}i {minute + MINUTE_MS}")
    return lines


def slot(minute: int) -> str:
    """The series a minute's rows are in: its minute of the hour. InfluxDB copies the
    whole of a series' unsaved points (its cache entry) for every query that reads the
    series, so the rows of each minute are kept out of the next minutes' series."""
    return f"{int(minute) // MINUTE_MS % 60:02d}"


def tick_line(time_ms: int, points: int, late: int) -> str:
    return f"{MEASUREMENT},kind=tick points={points}i,late={late}i {time_ms}"


def minute_of(time_ms: int) -> int:
    """The minute m whose (m, m + 1m] holds ``time_ms``."""
    return (time_ms - 1) // MINUTE_MS * MINUTE_MS


@dataclass
class ShardRollup:
    """What one shard holds of the rollup since some time."""

    moments: dict[int, pd.DataFrame] = field(default_factory=dict)  # by minute, COLUMNS
    done: dict[int, tuple[int, int]] = field(default_factory=dict)  # minute: (rows, points)
    ticks: list[tuple[int, int, int]] = field(default_factory=list)  # (time, points, late)

    def complete(self, minute: int) -> bool:
        if minute not in self.done:
            return False
        frame = self.moments.get(minute)
        rows, points = self.done[minute]
        held = 0 if frame is None else len(frame)
        return held == rows and (frame is None or int(frame["n"].sum()) == points)

    def stored(self, minute: int) -> int:
        """The rollup's own rows in ``minute`` (series and done rows, tick rows): points
        the shard counts as written besides the prices."""
        rows = self.done.get(minute, (0, 0))[0] + (minute in self.done)
        return rows + sum(1 for t, _, _ in self.ticks if minute_of(t) == minute)


def read(answer: Iterable[Series]) -> ShardRollup:
    """A shard's answer to :func:`~federation.core.influxql.rollup_query` (epoch=ms)."""
    rollup = ShardRollup()
    series_rows: list[list[object]] = []
    for series in answer:
        kind = series.get("tags", {}).get("kind")
        index = {c: i for i, c in enumerate(series["columns"])}
        values = series["values"]
        if kind == "series":
            fields = [index[c] for c in ("exchange", "pair", "n", "mean", "m2")]
            series_rows += [[minute_of(int(v[0])), *(v[i] for i in fields)] for v in values]
        elif kind == "done":
            for v in values:
                minute = minute_of(int(v[0]))
                rollup.done[minute] = (int(v[index["rows"]]), int(v[index["points"]]))
        elif kind == "tick":
            rollup.ticks += [
                (int(v[0]), int(v[index["points"]]), int(v[index["late"]])) for v in values
            ]
    frame = pd.DataFrame(series_rows, columns=COLUMNS).astype(
        {"bucket": "int64", "n": "int64", "mean": "float64", "m2": "float64"}
    )
    rollup.moments = {int(m): rows for m, rows in frame.groupby("bucket")}
    return rollup
