"""Per-series moments (count, mean, M2) and their exact combination.

The rank needs each series' sample standard deviation over a window. Partial windows
(an hour, an edge of a window) are asked of InfluxDB as ``COUNT``, ``MEAN`` and
``STDDEV`` and turned into (n, mean, M2 = stddev² · (n - 1)); any set of partials of a
series combines exactly (Chan et al.): n = Σnᵢ, mean = Σnᵢ·meanᵢ / n,
M2 = ΣM2ᵢ + Σnᵢ·(meanᵢ - mean)². Unlike running sums of squares, this loses no
precision on prices of 60,000 that move by cents.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from federation.core.types import Series

KEY = ["exchange", "pair"]
COLUMNS = ["bucket", "exchange", "pair", "n", "mean", "m2"]


def from_series(answers: Iterable[list[Series]]) -> pd.DataFrame:
    """Moments rows from shards' answers to
    :func:`~federation.core.influxql.moments_query`; ``bucket`` is the
    row's time (the hour's start, or 0 without GROUP BY time). Replicas count once."""
    rows = [
        (v[0], s["tags"]["exchange"], s["tags"]["pair"], v[1], v[2], v[3])
        for series in answers
        for s in series
        if s.get("tags")
        for v in s["values"]
        if v[1]
    ]
    frame = pd.DataFrame(rows, columns=["bucket", "exchange", "pair", "n", "mean", "sd"])
    frame = frame.drop_duplicates(["bucket", *KEY])
    sd = frame["sd"].astype("float64").fillna(0.0).to_numpy()
    n = frame["n"].astype("int64")
    return pd.DataFrame(
        {
            "bucket": frame["bucket"].astype("int64"),
            "exchange": frame["exchange"],
            "pair": frame["pair"],
            "n": n,
            "mean": frame["mean"].astype("float64"),
            "m2": sd * sd * (n.to_numpy() - 1),
        }
    )


def from_points(points: pd.DataFrame, bucket_ms: int) -> pd.DataFrame:
    """Moments rows of raw points (columns time in epoch ms, exchange, pair, price), per
    series and bucket (b, b + bucket] (``bucket`` is b). The caller drops replicas."""
    if points.empty:
        return pd.DataFrame(
            {c: pd.Series(dtype="int64" if c in ("bucket", "n") else "object") for c in COLUMNS}
        ).astype({"mean": "float64", "m2": "float64"})
    bucket = (points["time"].to_numpy(dtype="int64") - 1) // bucket_ms * bucket_ms
    grouped = points.assign(bucket=bucket).groupby(["bucket", *KEY], sort=False)["price"]
    n = grouped.count()
    out = pd.DataFrame({"n": n, "mean": grouped.mean(), "m2": grouped.var(ddof=0) * n})
    return out.reset_index()[COLUMNS].astype({"n": "int64", "bucket": "int64"})


def combine(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """One row per series: the exact moments of all its partials together."""
    frames = [p for p in parts if not p.empty]
    if not frames:
        return pd.DataFrame(columns=[*KEY, "n", "mean", "m2"])
    rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    codes = rows.groupby(KEY, sort=False).ngroup().to_numpy()
    n_i = rows["n"].to_numpy(dtype="float64")
    mean_i = rows["mean"].to_numpy(dtype="float64")
    n = np.bincount(codes, weights=n_i)
    mean = np.bincount(codes, weights=n_i * mean_i) / n
    spread = rows["m2"].to_numpy(dtype="float64") + n_i * (mean_i - mean[codes]) ** 2
    first = np.unique(codes, return_index=True)[1]  # the row of each series' first part
    # Only those rows' names: a column of Arrow strings made into Python strings whole
    # costs more than the rest of the combination.
    return pd.DataFrame(
        {
            "exchange": rows["exchange"].iloc[first].to_numpy(),
            "pair": rows["pair"].iloc[first].to_numpy(),
            "n": n.astype("int64"),
            "mean": mean,
            "m2": np.bincount(codes, weights=spread),
        }
    )


def stddev(moments: pd.DataFrame) -> pd.DataFrame:
    """(exchange, pair, stddev): the sample deviation, NaN below two points."""
    n = moments["n"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.where(
            n >= 2,
            np.sqrt(np.maximum(moments["m2"].to_numpy(dtype="float64"), 0) / (n - 1)),
            np.nan,
        )
    return pd.DataFrame({"exchange": moments["exchange"], "pair": moments["pair"], "stddev": sd})
