"""Spike detection as points arrive: a point above ``factor`` x the trailing mean of its
series over the subscription's window (the point itself left out of the mean) raises
one alert per subscription, once per crossing.

Once per crossing: a (subscription, series, metric) fires on the first point above its
threshold and is then *raised*; it fires again only after a point at or below the
threshold (judged against the mean of that moment) has cleared it. Points whose mean
cannot be judged (a NaN volume, fewer than ``min_points`` points in the window, a mean
of 0) change nothing. The raised set is what :class:`~alerts.store.AlertStore` persists
(``alert_crossings``), so a restart neither repeats nor forgets a crossing.

All work is in memory and vectorised over the series of a tick: a series index
(``(exchange, pair)`` -> row), one :class:`~alerts.window.WindowStats` per distinct
window of the subscriptions, and per subscription one bit per series and metric.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from alerts.types import AlertPayload, CrossingKey, Metric, Subscription, window_text
from alerts.window import NEVER, Index, WindowStats
from federation.core.clock import SYSTEM_CLOCK, Clock
from federation.core.timefmt import iso_time

# Event ids are uuid5 of what the alert is about, so the same alert found twice (two
# ingesters, a replayed tick) is the same outbox row and the same id for receivers.
EVENT_NAMESPACE = uuid.UUID("5d0c8f8e-8a55-4d7e-9a57-2f1c0a6f3b21")
_ROW: dict[Metric, int] = {"price": 0, "volume": 1}

Bools = npt.NDArray[np.bool_]


def event_id(subscription_id: str, exchange: str, pair: str, metric: str, time_ms: int) -> str:
    return str(
        uuid.uuid5(EVENT_NAMESPACE, f"{subscription_id}|{exchange}|{pair}|{metric}|{time_ms}")
    )


class SeriesIndex:
    """Rows for (exchange, pair) series, assigned on first sight, with integer codes of
    the exchange and the pair for cheap filter matching."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], int] = {}
        self.exchanges: list[str] = []
        self.pairs: list[str] = []
        self._codes: dict[str, dict[str, int]] = {"exchange": {}, "pair": {}}
        self.exchange_code = np.zeros(0, dtype=np.int32)
        self.pair_code = np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.pairs)

    def code(self, kind: str, name: str) -> int:
        codes = self._codes[kind]
        return codes.setdefault(name, len(codes))

    def lookup(self, exchanges: Sequence[str], pairs: Sequence[str]) -> Index:
        rows: list[int | None] = [self._rows.get(key) for key in zip(exchanges, pairs, strict=True)]
        if None in rows:
            for pos, row in enumerate(rows):
                if row is None:
                    rows[pos] = self._add(exchanges[pos], pairs[pos])
        return np.array(rows, dtype=np.intp)

    def _add(self, exchange: str, pair: str) -> int:
        row = self._rows.get((exchange, pair))
        if row is not None:
            return row
        row = len(self.pairs)
        self._rows[(exchange, pair)] = row
        self.exchanges.append(exchange)
        self.pairs.append(pair)
        if row >= self.pair_code.size:
            size = max(1024, 2 * self.pair_code.size)
            self.exchange_code = np.resize(self.exchange_code, size)
            self.pair_code = np.resize(self.pair_code, size)
        self.exchange_code[row] = self.code("exchange", exchange)
        self.pair_code[row] = self.code("pair", pair)
        return row


@dataclass
class _Watch:
    """A subscription's filter and its raised bits."""

    sub: Subscription
    exchange_code: int | None
    pair_code: int | None
    raised: dict[Metric, Bools]

    def matches(self, series: SeriesIndex, idx: Index) -> Bools | None:
        match: Bools | None = None
        if self.exchange_code is not None:
            match = series.exchange_code[idx] == self.exchange_code
        if self.pair_code is not None:
            by_pair = series.pair_code[idx] == self.pair_code
            match = by_pair if match is None else match & by_pair
        return match


@dataclass
class _Window:
    stats: WindowStats
    cutoff_ms: int  # live points before it are covered by the history load
    ready: bool = False  # history loaded: the mean can be trusted


@dataclass
class Detection:
    """What observed frames gave: alerts to deliver, and the crossing changes to persist
    (in the order they happened: a key raised, cleared and raised again ends raised)."""

    events: list[AlertPayload] = field(default_factory=list)
    changes: list[tuple[CrossingKey, bool]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.changes)

    def extend(self, other: Detection) -> None:
        self.events += other.events
        self.changes += other.changes

    def final_state(self) -> dict[CrossingKey, bool]:
        """Each changed key's last state: True raised, False cleared."""
        return dict(self.changes)


class Detector:
    def __init__(self, *, min_points: int = 1, clock: Clock = SYSTEM_CLOCK) -> None:
        self.min_points = min_points
        self.clock = clock
        self.series = SeriesIndex()
        self._capacity = 0
        self._last_time = np.zeros(0, dtype=np.int64)
        self._watches: dict[str, _Watch] = {}
        self._windows: dict[int, _Window] = {}

    @property
    def subscriptions(self) -> list[Subscription]:
        return [w.sub for w in self._watches.values()]

    @property
    def windows(self) -> dict[int, bool]:
        """Each distinct window in use and whether its history is loaded."""
        return {w: win.ready for w, win in self._windows.items()}

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays (the series index's strings not included)."""
        stats = sum(win.stats.nbytes for win in self._windows.values())
        bits = sum(a.nbytes for w in self._watches.values() for a in w.raised.values())
        codes = self.series.exchange_code.nbytes + self.series.pair_code.nbytes
        return int(stats + bits + codes + self._last_time.nbytes)

    def set_subscriptions(
        self, subs: Iterable[Subscription], crossings: Iterable[CrossingKey] = ()
    ) -> list[int]:
        """Follow this set of subscriptions; new ones take their raised state from
        ``crossings``. Returns the new windows, whose history the caller loads."""
        wanted = {s.id: s for s in subs}
        for gone in set(self._watches) - set(wanted):
            del self._watches[gone]
        added = [s for s in wanted.values() if s.id not in self._watches]
        for sub in added:
            self._watches[sub.id] = _Watch(
                sub,
                None if sub.exchange is None else self.series.code("exchange", sub.exchange),
                None if sub.pair is None else self.series.code("pair", sub.pair),
                {m: np.zeros(self._capacity, dtype=np.bool_) for m in sub.metrics},
            )
        fresh = {s.id for s in added}
        for key in crossings:
            watch = self._watches.get(key.subscription_id)
            if key.subscription_id in fresh and watch and key.metric in watch.raised:
                row = int(self.series.lookup([key.exchange], [key.pair])[0])
                self._ensure_capacity()
                watch.raised[key.metric][row] = True
        windows = {w.sub.window_s for w in self._watches.values()}
        for unused in set(self._windows) - windows:
            del self._windows[unused]
        new = sorted(windows - set(self._windows))
        for window_s in new:
            self._windows[window_s] = _Window(
                WindowStats(window_s, self._capacity), self.clock.now_ms()
            )
        return new

    def window_stats(
        self, window_s: int, exchange: str, pair: str, at_ms: int
    ) -> dict[Metric, tuple[float, int]]:
        """The mean and the point count per metric of one series over the window, as a
        point at ``at_ms`` would see them (for diagnostics and tests)."""
        stats = self._windows[window_s].stats
        idx = self.series.lookup([exchange], [pair])
        self._ensure_capacity()
        sums, counts = stats.totals_at(idx, stats.bucket_of(at_ms))
        return {
            metric: (float(sums[row, 0] / max(counts[row, 0], 1)), int(counts[row, 0]))
            for metric, row in _ROW.items()
        }

    def history_cutoff(self, window_s: int) -> int:
        return self._windows[window_s].cutoff_ms

    def add_history(self, window_s: int, buckets: pd.DataFrame) -> None:
        """Load a window's history (columns exchange, pair, time (bucket start, ms),
        price_sum, price_count, volume_sum, volume_count) and trust its mean from now on."""
        win = self._windows.get(window_s)
        if win is None:
            return  # its subscriptions went away while the history loaded
        if not buckets.empty:
            idx = self.series.lookup(buckets["exchange"].tolist(), buckets["pair"].tolist())
            self._ensure_capacity()
            number = buckets["time"].to_numpy(dtype=np.int64) // win.stats.bucket_ms
            sums = buckets[["price_sum", "volume_sum"]].to_numpy(dtype=np.float64).T
            counts = buckets[["price_count", "volume_count"]].to_numpy(dtype=np.float64).T
            win.stats.add_buckets(idx, number, sums, counts)
        win.ready = True

    def observe(self, frame: pd.DataFrame) -> Detection:
        """Feed a frame (columns time, exchange, pair, price[, volume]) of one or more
        ticks; points not newer than the series' last one are ignored."""
        out = Detection()
        if frame.empty or not self._watches:
            return out
        times = frame["time"].to_numpy(dtype=np.int64)
        if (times == times[0]).all():
            self._tick(int(times[0]), frame, out)
        else:
            for time_ms, part in frame.groupby("time", sort=True):
                self._tick(int(time_ms), part, out)
        return out

    def _ensure_capacity(self) -> None:
        needed = len(self.series)
        if needed <= self._capacity:
            return
        capacity = max(1024, 2 * self._capacity, needed)
        extra = capacity - self._capacity
        self._last_time = np.concatenate([self._last_time, np.full(extra, NEVER, np.int64)])
        for win in self._windows.values():
            win.stats.grow(capacity)
        for watch in self._watches.values():
            for metric, bits in watch.raised.items():
                watch.raised[metric] = np.concatenate([bits, np.zeros(extra, np.bool_)])
        self._capacity = capacity

    def _tick(self, time_ms: int, part: pd.DataFrame, out: Detection) -> None:
        idx = self.series.lookup(part["exchange"].tolist(), part["pair"].tolist())
        self._ensure_capacity()
        price = part["price"].to_numpy(dtype=np.float64, na_value=np.nan)
        volume = (
            part["volume"].to_numpy(dtype=np.float64, na_value=np.nan)
            if "volume" in part
            else np.full(idx.size, np.nan)
        )
        values = np.vstack(
            [np.where(price > 0, price, np.nan), np.where(volume >= 0, volume, np.nan)]
        )
        values[~np.isfinite(values)] = np.nan
        if np.unique(idx).size != idx.size:  # a series twice in one tick: the last wins
            _, first_from_end = np.unique(idx[::-1], return_index=True)
            keep = np.sort(idx.size - 1 - first_from_end)
            idx, values = idx[keep], values[:, keep]
        fresh = self._last_time[idx] < time_ms
        if not fresh.all():
            idx, values = idx[fresh], values[:, fresh]
        if idx.size == 0:
            return
        self._last_time[idx] = time_ms
        for window_s, win in self._windows.items():
            if time_ms < win.cutoff_ms:
                continue
            bucket = win.stats.bucket_of(time_ms)
            win.stats.advance(idx, bucket)
            watches = [w for w in self._watches.values() if w.sub.window_s == window_s]
            if win.ready and watches:
                sums, counts = win.stats.totals(idx)
                judged = np.isfinite(values) & (counts >= self.min_points) & (sums > 0)
                mean = sums / np.maximum(counts, 1)
                for watch in watches:
                    self._judge(watch, time_ms, idx, values, mean, judged, out)
            win.stats.add(idx, bucket, values)

    def _judge(
        self,
        watch: _Watch,
        time_ms: int,
        idx: Index,
        values: npt.NDArray[np.float64],
        mean: npt.NDArray[np.float64],
        judged: Bools,
        out: Detection,
    ) -> None:
        sub = watch.sub
        match = watch.matches(self.series, idx)
        for metric in sub.metrics:
            row = _ROW[metric]
            ok = judged[row] if match is None else judged[row] & match
            above = ok & (values[row] > sub.factor * mean[row])
            bits = watch.raised[metric]
            before = bits[idx]
            crossed = above & ~before
            cleared = before & ok & ~above
            if not (crossed.any() or cleared.any()):
                continue
            bits[idx] = (before & ~cleared) | above
            for pos in np.flatnonzero(crossed).tolist():
                series = int(idx[pos])
                exchange, pair = self.series.exchanges[series], self.series.pairs[series]
                value, avg = float(values[row, pos]), float(mean[row, pos])
                out.events.append(
                    AlertPayload(
                        event_id=event_id(sub.id, exchange, pair, metric, time_ms),
                        subscription_id=sub.id,
                        pair=pair,
                        exchange=exchange,
                        metric=metric,
                        value=value,
                        mean=avg,
                        factor=sub.factor,
                        ratio=value / avg,
                        window=window_text(sub.window_s),
                        window_seconds=sub.window_s,
                        time=iso_time(time_ms),
                        time_ms=time_ms,
                    )
                )
                out.changes.append((CrossingKey(sub.id, exchange, pair, metric), True))
            for pos in np.flatnonzero(cleared).tolist():
                series = int(idx[pos])
                key = CrossingKey(
                    sub.id, self.series.exchanges[series], self.series.pairs[series], metric
                )
                out.changes.append((key, False))
