"""Aggregates combined exactly from per-shard partials, and GROUP BY time's fill.

Each shard answers, per series (or per group of the client's dimensions and the
placement tag when the WHERE pins it), what each function needs (:mod:`.aggregate`),
every series' partial taken from one copy (:mod:`.copies`), so replicas count once.
Counts and sums add, MEAN is
Σsum/Σcount, STDDEV combines (n, mean, M2) by Chan's formula (the sample deviation,
null below two points); MIN and MAX keep the earliest time of the extreme, FIRST and
LAST the greater value at the same time, as InfluxDB's reducers do; SPREAD is MAX-MIN.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

COMBINABLE = frozenset({"count", "sum", "mean", "stddev", "min", "max", "first", "last", "spread"})
MOMENTS = ("count", "sum", "mean", "stddev")  # asked together, per field
SELECTORS = frozenset({"min", "max", "first", "last"})


@dataclass
class Accumulator:
    """One call's partials of one group and window, combined as they arrive."""

    func: str
    n: int = 0
    total: float = 0.0
    mean: float = 0.0
    m2: float = 0.0
    value: Any = None
    time: int | None = None
    low: float | None = None
    high: float | None = None
    seen: bool = False

    def add_moments(
        self, n: int, total: float | None, mean: float | None, sd: float | None
    ) -> None:
        """A partial's count, and its sum (COUNT, SUM, MEAN) or mean and deviation
        (STDDEV)."""
        if not n:
            return
        self.seen = True
        if self.func in {"count", "sum", "mean"}:
            if self.func != "count" and total is not None:
                # The first sum as it came (an integer field's sum stays an integer).
                self.total = total if self.n == 0 else self.total + total
            self.n += n
            return
        assert mean is not None
        m2 = (sd or 0.0) ** 2 * (n - 1)
        combined = self.n + n
        delta = mean - self.mean
        self.m2 += m2 + delta * delta * self.n * n / combined
        self.mean += delta * n / combined
        self.n = combined

    def add_selector(self, func: str, value: Any, time: int) -> None:
        if value is None:
            return
        self.seen = True
        if self.func == "spread":
            self.low = value if self.low is None else min(self.low, value)
            self.high = value if self.high is None else max(self.high, value)
            return
        if self.time is None:
            self.value, self.time = value, time
            return
        better = {
            "min": value < self.value or (value == self.value and time < self.time),
            "max": value > self.value or (value == self.value and time < self.time),
            "first": time < self.time or (time == self.time and value > self.value),
            "last": time > self.time or (time == self.time and value > self.value),
        }[func]
        if better:
            self.value, self.time = value, time

    def result(self) -> Any:
        if not self.seen:
            return None
        if self.func == "count":
            return self.n
        if self.func == "sum":
            return self.total
        if self.func == "mean":
            return self.total / self.n
        if self.func == "stddev":
            return math.sqrt(max(self.m2, 0.0) / (self.n - 1)) if self.n >= 2 else None
        if self.func == "spread":
            assert self.low is not None
            assert self.high is not None
            return self.high - self.low
        return self.value


@dataclass
class Group:
    """One output series: its windows (or its one row), each with a row of accumulators."""

    calls: list[str]
    windows: dict[int, list[Accumulator]] = field(default_factory=dict)

    def row(self, window: int) -> list[Accumulator]:
        if window not in self.windows:
            self.windows[window] = [Accumulator(c) for c in self.calls]
        return self.windows[window]


def filled(
    rows: list[tuple[int, list[Any]]],
    windows: Iterable[int],
    fill: str,
    fill_value: Any,
    calls: list[str],
) -> list[tuple[int, list[Any]]]:
    """Every window of ``windows`` with its row, the empty ones filled as ``fill`` says;
    ``rows`` are the windows that had points."""
    have = dict(rows)
    width = len(calls)
    out: list[tuple[int, list[Any]]] = []
    for window in windows:
        if window in have:
            out.append((window, list(have[window])))
        elif fill != "none":
            value = fill_value if fill == "number" else None
            out.append((window, [value] * width))
    if fill == "previous":
        last: list[Any] = [None] * width
        for _, values in out:
            for i, v in enumerate(values):
                if v is None:
                    values[i] = last[i]
                else:
                    last[i] = v
    elif fill == "linear":
        for i in range(width):
            known = [(k, row[1][i]) for k, row in enumerate(out) if row[1][i] is not None]
            for (a, va), (b, vb) in itertools.pairwise(known):
                for k in range(a + 1, b):
                    ta, tb, tk = out[a][0], out[b][0], out[k][0]
                    value = va + (vb - va) * (tk - ta) / (tb - ta)
                    out[k][1][i] = value if isinstance(va, float) else int(value)
    return out
