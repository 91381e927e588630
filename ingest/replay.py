"""Replay a recorded feed from a file: how history is imported, and how a recorded day is
played back at its own pace.

The file is CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, through pyarrow: the
``parquet`` extra) with the columns ``time, exchange, pair, price`` and optionally
``volume``; other columns are ignored. ``time`` is an ISO 8601 text (``2023-03-01T12:00:00Z``;
without a zone it is UTC), a Parquet timestamp, or an epoch number whose unit (s, ms, us,
ns) is read from its magnitude unless given. Rows are written at their recorded times.

``speed`` 0 writes as fast as the shards take it (an import); ``speed`` 1 replays in real
time, 60 sixty times faster: each distinct time is written when its offset from the
first one, divided by the speed, has passed. The file is read in chunks (sorted by time
within each chunk), so its size is not bounded by memory; a file sorted by time replays
in order. Every row goes through :func:`ingest.source.validate` like a live tick's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from federation.core.errors import ConfigError
from ingest.source import Snapshot

log = logging.getLogger(__name__)

REQUIRED = ("time", "exchange", "pair", "price")
UNITS = {"s": 1_000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}  # factor to milliseconds


def guess_unit(values: np.ndarray) -> str:
    """The epoch unit of numbers like these: seconds < 1e11 <= ms < 1e14 <= us < 1e17 <= ns
    (each boundary is the year ~5000 of the smaller unit and ~1973 of the larger)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "ms"
    magnitude = float(np.median(np.abs(finite)))
    for unit, limit in (("s", 1e11), ("ms", 1e14), ("us", 1e17)):
        if magnitude < limit:
            return unit
    return "ns"


def to_epoch_ms(column: pd.Series, unit: str | None = None) -> tuple[np.ndarray, str | None]:
    """Milliseconds as float (NaN where unreadable) and the epoch unit used, if numeric."""
    if pd.api.types.is_datetime64_any_dtype(column):
        stamps = pd.to_datetime(column, utc=True)
        return _datetimes_to_ms(stamps), None
    numeric = pd.to_numeric(column, errors="coerce")
    numbers = np.array(numeric.to_numpy(dtype="float64", na_value=np.nan))  # a writable copy
    text = column.notna().to_numpy() & np.isnan(numbers)
    if not np.isnan(numbers).all():
        unit = unit or guess_unit(numbers)
        numbers = numbers * UNITS[unit]
    else:
        unit = None
    if text.any():
        stamps = pd.to_datetime(
            column[text].astype("string"), utc=True, errors="coerce", format="ISO8601"
        )
        numbers[text] = _datetimes_to_ms(stamps)
    return numbers, unit


def _datetimes_to_ms(stamps: pd.Series) -> np.ndarray:
    ns = stamps.dt.as_unit("ns")
    out = ns.astype("int64").to_numpy(dtype="float64") / 1e6
    out[ns.isna().to_numpy()] = np.nan
    return np.asarray(out, dtype="float64")


class ReplaySource:
    name = "replay"

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float = 0.0,
        start_ms: int | None = None,
        end_ms: int | None = None,
        time_unit: str | None = None,
        chunk_rows: int = 200_000,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"--file: {self.path} is not a file; fix: give the path of a CSV")
        name = self.path.name.lower()
        self.parquet = name.endswith((".parquet", ".pq"))
        if not self.parquet and not name.endswith((".csv", ".csv.gz", ".txt")):
            raise ConfigError(
                f"--file: {self.path} is neither CSV (.csv, .csv.gz) nor Parquet (.parquet);"
                " fix: rename it with the extension of its format"
            )
        if speed < 0:
            raise ConfigError(f"--speed: {speed} is negative; fix: 0 (as fast as possible) or >0")
        if time_unit is not None and time_unit not in UNITS:
            raise ConfigError(f"--time-unit: {time_unit!r}; fix: one of {', '.join(UNITS)}")
        self.speed = speed
        self.start_ms, self.end_ms = start_ms, end_ms
        self.time_unit = time_unit
        self.chunk_rows = chunk_rows
        self.rows_read = 0

    def count_rows(self) -> int:
        """Rows in the file (for progress): Parquet metadata, or a count of CSV lines."""
        if self.parquet:
            return int(self._parquet_file().metadata.num_rows)
        with pd.read_csv(self.path, usecols=[0], chunksize=1_000_000) as reader:
            return sum(len(chunk) for chunk in reader)

    def _parquet_file(self) -> Any:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError("Parquet files need pyarrow; fix: pip install '.[parquet]'") from None
        return pq.ParquetFile(self.path)

    def _chunks(self) -> Iterator[pd.DataFrame]:
        if self.parquet:
            pf = self._parquet_file()
            for batch in pf.iter_batches(batch_size=self.chunk_rows):
                yield batch.to_pandas()
            return
        with pd.read_csv(
            self.path,
            chunksize=self.chunk_rows,
            dtype={"exchange": "string", "pair": "string", "time": "string"},
            keep_default_na=False,
            na_values=[""],
        ) as reader:
            yield from reader

    def _prepare(self, raw: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in REQUIRED if c not in raw.columns]
        if missing:
            raise ConfigError(
                f"{self.path}: no column {', '.join(missing)} (it has"
                f" {', '.join(map(str, raw.columns))}); fix: a header line with time,"
                " exchange, pair, price[, volume]"
            )
        times, unit = to_epoch_ms(raw["time"], self.time_unit)
        if unit is not None and self.time_unit is None:
            self.time_unit = unit  # one unit for the whole file, read from its first chunk
            log.info("replay %s: numeric times read as epoch %s", self.path, unit)
        frame = pd.DataFrame(
            {
                "time": np.floor(times),
                "exchange": raw["exchange"].astype(object).to_numpy(),
                "pair": raw["pair"].astype(object).to_numpy(),
                "price": raw["price"].to_numpy(),
                "volume": raw["volume"].to_numpy() if "volume" in raw else np.nan,
            }
        )
        keep = np.ones(len(frame), dtype=bool)
        if self.start_ms is not None:
            keep &= ~(times < self.start_ms)
        if self.end_ms is not None:
            keep &= ~(times >= self.end_ms)
        frame = frame[keep]
        return frame.sort_values("time", kind="stable", na_position="first").reset_index(drop=True)

    async def frames(self) -> AsyncIterator[Snapshot]:
        """The file's rows in frames: chunks at full speed, one frame per time when paced."""
        chunks = self._chunks()
        origin: tuple[float, float] | None = None  # (first recorded ms, monotonic time then)
        while True:
            raw = await asyncio.to_thread(next, chunks, None)
            if raw is None:
                return
            self.rows_read += len(raw)
            frame = self._prepare(raw)
            if frame.empty:
                continue
            if self.speed == 0:
                yield Snapshot(frame)
                continue
            unreadable = frame["time"].isna().to_numpy()
            if unreadable.any():  # no time to pace them by: validate() counts them out
                yield Snapshot(frame[unreadable].reset_index(drop=True))
                frame = frame[~unreadable].reset_index(drop=True)
            times = frame["time"].to_numpy(dtype="float64")
            bounds = np.flatnonzero(np.diff(times)) + 1
            for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(times)], strict=True):
                stamp = float(times[lo])
                if origin is None:
                    origin = (stamp, time.monotonic())
                delay = origin[1] + (stamp - origin[0]) / 1000 / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                yield Snapshot(frame.iloc[lo:hi].reset_index(drop=True))
