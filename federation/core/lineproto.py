"""InfluxDB line protocol for snapshot frames (time, exchange, pair, price[, volume]).

Hand-built rather than through influxdb-client's serializer because a 1-second tick of
14k series makes this a hot path; influxdb-client is the oracle the tests compare with.
Tag values escape ``,``, `` `` and ``=`` as influxdb-client does (a backslash stays
literal in InfluxDB 1.x tag values); a non-finite volume is left out of
its line, and rows whose price is not a finite number are refused before they get here
(:func:`finite_rows`): InfluxDB rejects ``inf`` and ``NaN`` would be written as garbage.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

MEASUREMENT = "price"
_TAG_SPECIAL = re.compile(r"[, =]")


def escape_tag(value: str) -> str:
    if _TAG_SPECIAL.search(value) is None:
        return value
    return value.replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


def escape_measurement(name: str) -> str:
    """A measurement name as line protocol writes it (``,`` and `` `` escaped)."""
    return name.replace(",", "\\,").replace(" ", "\\ ")


def string_field(value: str) -> str:
    """A string field value as line protocol writes it: quoted, ``\\`` and ``"``
    escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# A line's measurement and tags, token by token (escapes included), up to its pair tag.
_TOKEN = rb"(?:[^\\,= \n]|\\.)"
_PAIR_TAG = re.compile(
    rb"^" + _TOKEN + rb"+(?:," + _TOKEN + rb"+=" + _TOKEN + rb"*)*?,pair=(" + _TOKEN + rb"*)",
    re.MULTILINE,
)
_PLAIN_PAIR_TAG = re.compile(rb",pair=([^, \n]*)")  # without escapes the first one is the tag
_UNESCAPE = re.compile(rb"\\([, =])")


def pairs_of(body: bytes) -> list[str]:
    """The ``pair`` tag of every line of ``body`` (line protocol made by :func:`to_lines`),
    unescaped, in order; one regex pass over the whole body."""
    if b"\\" not in body:
        return [v.decode() for v in _PLAIN_PAIR_TAG.findall(body)]
    return [_UNESCAPE.sub(rb"\1", v).decode() for v in _PAIR_TAG.findall(body)]


def finite_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows whose price is a finite positive number."""
    price = frame["price"].to_numpy(dtype="float64", na_value=np.nan)
    keep = np.isfinite(price) & (price > 0)
    return frame if keep.all() else frame[keep]


def to_lines(frame: pd.DataFrame, measurement: str = MEASUREMENT) -> list[str]:
    """One line per row; ``time`` is epoch milliseconds (write with ``precision=ms``)."""
    if frame.empty:
        return []
    exchanges = [escape_tag(e) for e in frame["exchange"].tolist()]
    pairs = [escape_tag(p) for p in frame["pair"].tolist()]
    prices = frame["price"].to_numpy(dtype="float64").tolist()
    times = frame["time"].to_numpy(dtype="int64").tolist()
    if "volume" in frame:
        volume = frame["volume"].to_numpy(dtype="float64", na_value=np.nan)
        has_volume = np.isfinite(volume).tolist()
        volumes = volume.tolist()
    else:
        has_volume = [False] * len(frame)
        volumes = has_volume
    # repr() of a Python float is the shortest text that reads back as the same float.
    return [
        f"{measurement},exchange={e},pair={p} price={pr!r},volume={v!r} {t}"
        if hv
        else f"{measurement},exchange={e},pair={p} price={pr!r} {t}"
        for e, p, pr, v, hv, t in zip(
            exchanges, pairs, prices, volumes, has_volume, times, strict=True
        )
    ]


def batches(lines: list[str], batch_lines: int) -> list[bytes]:
    """Bodies of at most ``batch_lines`` lines, each ending in a newline, so two bodies
    appended to each other (a replay) never merge their last and first lines."""
    return [
        ("\n".join(lines[i : i + batch_lines]) + "\n").encode()
        for i in range(0, len(lines), batch_lines)
    ]
