"""Trailing sums and counts of price and volume per series over one window, in memory.

A window of ``W`` seconds is cut into ``BUCKETS`` buckets of ``W / BUCKETS`` each; every
series keeps a ring of ``BUCKETS + 1`` of them (the window and the bucket now filling),
holding the sum and the count of each metric. Adding a point is O(1); moving to a new
bucket clears the buckets that left the window, so the memory is fixed per series:
``(BUCKETS + 1) x 2 metrics x (8 + 4) bytes`` = 1,464 bytes per series per distinct window
(20.5 MB for 14,000 series). The mean seen by a point at time ``t`` covers
``[start of t's bucket - W, t)``: between ``W`` and ``W + W/BUCKETS`` of history, exactly
``W`` when ticks fall on bucket boundaries (60 s ticks and a 1 h window).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BUCKETS = 60
NEVER = np.iinfo(np.int64).min // 2  # the bucket of a series never seen

Index = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]


class WindowStats:
    def __init__(self, window_s: int, capacity: int = 1024) -> None:
        if window_s % BUCKETS:
            raise ValueError(f"window must be a multiple of {BUCKETS} seconds, got {window_s}")
        self.window_s = window_s
        self.bucket_ms = window_s * 1000 // BUCKETS
        self.slots = BUCKETS + 1
        self.sums = np.zeros((2, capacity, self.slots))
        self.counts = np.zeros((2, capacity, self.slots), dtype=np.int32)
        self.last_bucket = np.full(capacity, NEVER, dtype=np.int64)

    @property
    def capacity(self) -> int:
        return int(self.last_bucket.size)

    @property
    def nbytes(self) -> int:
        return int(self.sums.nbytes + self.counts.nbytes + self.last_bucket.nbytes)

    def grow(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        extra = capacity - self.capacity
        self.sums = np.concatenate([self.sums, np.zeros((2, extra, self.slots))], axis=1)
        self.counts = np.concatenate(
            [self.counts, np.zeros((2, extra, self.slots), dtype=np.int32)], axis=1
        )
        self.last_bucket = np.concatenate([self.last_bucket, np.full(extra, NEVER, dtype=np.int64)])

    def bucket_of(self, time_ms: int) -> int:
        return time_ms // self.bucket_ms

    def advance(self, idx: Index, bucket: int) -> None:
        """Move the series ``idx`` to ``bucket``, clearing the buckets that left the
        window. Series already at a later bucket are not touched."""
        last = self.last_bucket[idx]
        moving = last < bucket
        if not moving.any():
            return
        rows, steps = idx[moving], np.minimum(bucket - last[moving], self.slots)
        # Series usually move together (one tick), so this loops once or twice.
        for step in np.unique(steps).tolist():
            these = rows[steps == step]
            if step >= self.slots:
                self.sums[:, these, :] = 0.0
                self.counts[:, these, :] = 0
            else:
                cols = (bucket - step + 1 + np.arange(step)) % self.slots
                self.sums[:, these[:, None], cols] = 0.0
                self.counts[:, these[:, None], cols] = 0
        self.last_bucket[rows] = bucket

    def totals(self, idx: Index) -> tuple[Floats, npt.NDArray[np.int64]]:
        """Sums and counts per metric (rows 0: price, 1: volume) of the series ``idx``
        over every bucket they hold; call :meth:`advance` first."""
        if np.array_equal(idx, np.arange(idx.size)):
            # The common case, every series in registration order: a view, no gather.
            sums, counts = self.sums[:, : idx.size], self.counts[:, : idx.size]
        else:
            sums, counts = self.sums[:, idx], self.counts[:, idx]
        return sums.sum(axis=2), counts.sum(axis=2, dtype=np.int64)

    def totals_at(self, idx: Index, bucket: int) -> tuple[Floats, npt.NDArray[np.int64]]:
        """What :meth:`totals` would give after ``advance(idx, bucket)``, without moving."""
        last = self.last_bucket[idx][:, None]
        held = last - ((last - np.arange(self.slots)) % self.slots)  # bucket in each slot
        inside = (held >= bucket - BUCKETS) & (held <= bucket)
        sums = np.where(inside, self.sums[:, idx], 0.0).sum(axis=2)
        return sums, np.where(inside, self.counts[:, idx], 0).sum(axis=2, dtype=np.int64)

    def add(self, idx: Index, bucket: int, values: Floats) -> None:
        """Add one point per series (``values``: shape (2, len(idx)), NaN for unknown)
        into ``bucket``, which must be the series' current bucket."""
        known = np.isfinite(values)
        slot = bucket % self.slots
        self.sums[:, idx, slot] += np.where(known, values, 0.0)
        self.counts[:, idx, slot] += known

    def add_buckets(
        self, idx: Index, buckets: npt.NDArray[np.int64], sums: Floats, counts: Floats
    ) -> None:
        """Add pre-aggregated buckets (from the shards' history): per row a series, a
        bucket number and sums and counts per metric (shape (2, rows)). Buckets older than
        the series' window are dropped; a series moves to the newest bucket it is given."""
        if idx.size == 0:
            return
        newest = np.full(self.capacity, NEVER, dtype=np.int64)
        np.maximum.at(newest, idx, buckets)
        series = np.unique(idx)
        # Grouped by newest bucket: nearly every series shares the last one.
        for bucket in np.unique(newest[series]).tolist():
            self.advance(series[newest[series] == bucket], bucket)
        keep = buckets > self.last_bucket[idx] - self.slots
        idx, buckets = idx[keep], buckets[keep]
        slots = buckets % self.slots
        sums, counts = np.nan_to_num(sums[:, keep]), np.nan_to_num(counts[:, keep])
        for metric in range(2):
            np.add.at(self.sums[metric], (idx, slots), sums[metric])
            np.add.at(self.counts[metric], (idx, slots), counts[metric].astype(np.int32))
