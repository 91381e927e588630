"""The one interface every price source implements, and the row checks they all share.

A source answers :meth:`Source.snapshot` with a :class:`Snapshot`: a frame of rows
``time`` (epoch ms: the source's own time where it gives one, else missing and the
tick's time is used), ``exchange`` and ``pair`` (ids such as ``binance-us``/``btcusd``),
``price`` and ``volume`` (NaN when the source does not know it), plus the count of what
the source left out while parsing, by reason. A source that cannot give anything this
tick raises :class:`~ingest.errors.SourceError`.

:func:`validate` is the gate between a source and the shards: whatever a source or a
file says, only rows with a well-formed id, a finite positive price and a sane time get
through; a negative or non-finite volume is dropped from its row (the price stays).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from federation.core import ids
from federation.core.clock import now_ms
from ingest.simulated import SNAPSHOT_COLUMNS, SimulatedMarket

COLUMNS: tuple[str, ...] = SNAPSHOT_COLUMNS  # time, exchange, pair, price, volume
MAX_FUTURE_MS = 5 * 60_000  # a clock ahead by more than this is a bad row, not a price


@dataclass
class Snapshot:
    rows: pd.DataFrame
    problems: Counter[str] = field(default_factory=Counter)  # left out while parsing, by reason
    ignored: Counter[str] = field(default_factory=Counter)  # not prices (index: keys), by kind


class Source(Protocol):
    name: str

    async def snapshot(self, tick_ms: int) -> Snapshot: ...

    async def aclose(self) -> None: ...


def empty_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": pd.Series([], dtype="int64"),
            "exchange": pd.Series([], dtype=object),
            "pair": pd.Series([], dtype=object),
            "price": pd.Series([], dtype="float64"),
            "volume": pd.Series([], dtype="float64"),
        }
    )


def _valid_ids(column: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray, int]:
    """Lower-cased ids, a mask of the well-formed ones, and codes (-1 for missing) over
    ``n`` distinct values. Each distinct value is checked once: a 14k-row tick has ~40
    exchanges and a few thousand pairs."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    originals = uniques.tolist()
    lowered = [u.lower() if isinstance(u, str) else "" for u in originals]
    ok_unique = np.array([ids.is_id(v) for v in lowered] + [False])
    ok = ok_unique[codes]  # code -1 (missing) takes the trailing False
    if lowered != originals:
        mapped = np.array([*lowered, ""], dtype=object)[codes]
        column = pd.Series(mapped, index=column.index, dtype=object)
    return column, ok, codes, len(originals)


def _numbers(rows: pd.DataFrame, name: str) -> npt.NDArray[np.float64]:
    column = rows[name]
    if column.dtype != np.float64:
        column = pd.to_numeric(column, errors="coerce")
    return np.asarray(column.to_numpy(dtype="float64", na_value=np.nan), dtype=np.float64)


def _duplicates(
    times: npt.NDArray[np.float64], series: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_]
) -> npt.NDArray[np.intp]:
    """Positions of kept rows whose (time, series) a later kept row repeats."""
    kept = np.flatnonzero(keep)
    codes = series[kept]
    if codes.size < 2 or np.bincount(codes).max() < 2:
        return np.empty(0, dtype=np.intp)  # no series twice: the usual tick, decided in O(n)
    order = np.lexsort((kept, codes, times[kept]))
    same = (codes[order][1:] == codes[order][:-1]) & (
        times[kept][order][1:] == times[kept][order][:-1]
    )
    return np.asarray(kept[order][:-1][same], dtype=np.intp)


def validate(
    rows: pd.DataFrame,
    tick_ms: int | None,
    problems: Counter[str],
    *,
    max_future_ms: int | None = MAX_FUTURE_MS,
) -> pd.DataFrame:
    """The writable rows of ``rows``, with exact dtypes; what is left out is counted in
    ``problems`` by reason. A missing time becomes ``tick_ms`` (or is a bad row without it);
    of two rows with the same (time, exchange, pair) the last one wins."""
    if rows.empty:
        return empty_rows()
    n = len(rows)
    exchange, ok_exchange, ex_codes, _ = _valid_ids(rows["exchange"])
    pair, ok_pair, pair_codes, n_pairs = _valid_ids(rows["pair"])
    bad_id = ~(ok_exchange & ok_pair)

    price = _numbers(rows, "price")
    with np.errstate(invalid="ignore"):
        positive = price > 0
    not_number = np.isnan(price) & ~bad_id
    not_positive = ~np.isnan(price) & ~(np.isfinite(price) & positive) & ~bad_id

    if "volume" in rows:
        volume = _numbers(rows, "volume")
        with np.errstate(invalid="ignore"):
            bad_volume = ~np.isnan(volume) & ~(np.isfinite(volume) & (volume >= 0))
        if bad_volume.any():
            problems["volume_invalid"] += int(bad_volume.sum())
            volume = np.where(bad_volume, np.nan, volume)
    else:
        volume = np.full(n, np.nan)

    times = _numbers(rows, "time") if "time" in rows else np.full(n, np.nan)
    if tick_ms is not None:
        times = np.where(np.isnan(times), float(tick_ms), times)
    with np.errstate(invalid="ignore"):
        bad_time = np.isnan(times) | (times <= 0)
        if max_future_ms is not None:
            bad_time |= times > now_ms() + max_future_ms
    bad_time &= ~(bad_id | not_number | not_positive)

    keep = ~(bad_id | not_number | not_positive | bad_time)
    for reason, mask in (
        ("bad_id", bad_id),
        ("price_not_number", not_number),
        ("price_not_positive", not_positive),
        ("bad_time", bad_time),
    ):
        if mask.any():
            problems[reason] += int(mask.sum())
    dup = _duplicates(times, ex_codes.astype(np.int64) * (n_pairs + 1) + pair_codes, keep)
    if dup.size:
        problems["duplicate"] += int(dup.size)
        keep[dup] = False
    out = pd.DataFrame(
        {
            "time": np.where(keep, times, 0.0).astype("int64"),
            "exchange": exchange.array,  # as they are: no conversion of 14k strings
            "pair": pair.array,
            "price": price,
            "volume": volume,
        }
    )
    return out if keep.all() else out[keep].reset_index(drop=True)


class SimulatedSource:
    """The simulated market (the offline default) behind the source interface."""

    name = "simulated"

    def __init__(self, market: SimulatedMarket) -> None:
        self.market = market

    async def snapshot(self, tick_ms: int) -> Snapshot:
        return Snapshot(self.market.snapshot(tick_ms))

    def history(self, start_ms: int, end_ms: int, step_ms: int = 60_000) -> Iterator[pd.DataFrame]:
        return self.market.history(start_ms, end_ms, step_ms)

    async def aclose(self) -> None:
        return None
