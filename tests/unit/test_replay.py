"""Replaying CSV and Parquet files: time formats, bad rows, ranges, pacing."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from federation.core.errors import ConfigError
from ingest.loop import Ingester
from ingest.replay import ReplaySource, guess_unit, to_epoch_ms
from ingest.writer import ShardWriter

T0 = 1_677_672_000_000  # 2023-03-01T12:00:00Z
CSV = """time,exchange,pair,price,volume
2023-03-01T12:00:00Z,kraken,btcusd,23150.5,1200.25
2023-03-01T12:00:00Z,binance-us,ethusdt,1650.12,
2023-03-01T12:01:00Z,kraken,btcusd,23160.0,1201.0
"""


def write(tmp_path: Path, text: str, name: str = "feed.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def collect(source: ReplaySource) -> pd.DataFrame:
    frames = [s.rows async for s in source.frames()]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def lines(recording_writer: tuple[ShardWriter, list[str]]) -> tuple[Ingester, list[str]]:
    """An ingester writing to one fake shard, and the lines that shard received."""
    writer, received = recording_writer
    return Ingester(None, writer), received


@pytest.mark.parametrize(
    "stamp",
    [
        "2023-03-01T12:00:00Z",
        "2023-03-01T12:00:00",
        "2023-03-01T13:00:00+01:00",
        "1677672000",
        "1677672000000",
        "1677672000000000",
        "1677672000000000000",
    ],
    ids=["iso-z", "iso-naive", "iso-offset", "epoch-s", "epoch-ms", "epoch-us", "epoch-ns"],
)
async def test_time_formats_read_as_epoch_ms(tmp_path: Path, stamp: str) -> None:
    path = write(tmp_path, f"time,exchange,pair,price\n{stamp},kraken,btcusd,1.5\n")
    rows = await collect(ReplaySource(path))
    assert rows["time"].tolist() == [T0]


@pytest.mark.parametrize(
    ("value", "unit"), [(1.6e9, "s"), (1.6e12, "ms"), (1.6e15, "us"), (1.6e18, "ns")]
)
def test_guess_unit_from_magnitude(value: float, unit: str) -> None:
    assert guess_unit(np.array([value, np.nan])) == unit


def test_to_epoch_ms_mixed_text_and_epoch_both_read() -> None:
    ms, unit = to_epoch_ms(pd.Series(["2023-03-01T12:00:00Z", "1677672060"]))
    assert ms.tolist() == [T0, T0 + 60_000]
    assert unit == "s"


def test_to_epoch_ms_unreadable_time_is_nan() -> None:
    ms, _ = to_epoch_ms(pd.Series(["2023-03-01T12:00:00Z", "yesterday"]))
    assert ms[0] == T0
    assert np.isnan(ms[1])


async def test_replay_csv_writes_every_row_at_recorded_time(
    tmp_path: Path, lines: tuple[Ingester, list[str]]
) -> None:
    ingester, received = lines
    source = ReplaySource(write(tmp_path, CSV))
    report = await ingester.replay(source.frames(), source.count_rows())
    assert report.points == 3
    assert sorted(received) == [
        f"price,exchange=binance-us,pair=ethusdt price=1650.12 {T0}",
        f"price,exchange=kraken,pair=btcusd price=23150.5,volume=1200.25 {T0}",
        f"price,exchange=kraken,pair=btcusd price=23160.0,volume=1201.0 {T0 + 60_000}",
    ]


async def test_replay_bad_rows_counted_not_written(
    tmp_path: Path, lines: tuple[Ingester, list[str]]
) -> None:
    ingester, received = lines
    text = CSV + (
        "2023-03-01T12:02:00Z,kraken,btcusd,abc,1\n"
        "2023-03-01T12:02:00Z,kraken,btcusd,-3,1\n"
        "2023-03-01T12:02:00Z,kra ken,btcusd,3,1\n"
        "soon,kraken,btcusd,3,1\n"
        "2023-03-01T12:02:00Z,kraken,ethusd,3,-1\n"
    )
    source = ReplaySource(write(tmp_path, text))
    await ingester.replay(source.frames(), source.count_rows())
    assert len(received) == 4
    assert received[-1].endswith(f"price=3.0 {T0 + 120_000}")
    assert ingester.problems == {
        "price_not_number": 1,
        "price_not_positive": 1,
        "bad_id": 1,
        "bad_time": 1,
        "volume_invalid": 1,
    }


async def test_replay_parquet_matches_csv(tmp_path: Path) -> None:
    frame = pd.read_csv(write(tmp_path, CSV))
    frame["time"] = pd.to_datetime(frame["time"], utc=True).astype("datetime64[ms, UTC]")
    frame.to_parquet(tmp_path / "feed.parquet")
    from_parquet = await collect(ReplaySource(tmp_path / "feed.parquet"))
    from_csv = await collect(ReplaySource(tmp_path / "feed.csv"))
    pd.testing.assert_frame_equal(from_parquet, from_csv, check_dtype=False)


async def test_replay_without_volume_column(tmp_path: Path) -> None:
    rows = await collect(ReplaySource(write(tmp_path, "time,exchange,pair,price\n1,a,b,2\n")))
    assert rows["volume"].isna().all()


async def test_replay_range_keeps_rows_inside(tmp_path: Path) -> None:
    source = ReplaySource(write(tmp_path, CSV), start_ms=T0 + 1, end_ms=T0 + 120_000)
    rows = await collect(source)
    assert rows["time"].tolist() == [T0 + 60_000]


async def test_replay_small_chunks_keep_every_row_in_order(tmp_path: Path) -> None:
    rows = await collect(ReplaySource(write(tmp_path, CSV), chunk_rows=1))
    assert rows["time"].tolist() == [T0, T0, T0 + 60_000]


async def test_replay_paced_one_frame_per_time_at_speed(tmp_path: Path) -> None:
    text = "time,exchange,pair,price\n" + "".join(
        f"{T0 + i * 1000},kraken,btcusd,{i + 1}\n{T0 + i * 1000},kraken,ethusd,{i + 1}\n"
        for i in range(3)
    )
    started = time.monotonic()
    frames = [s.rows async for s in ReplaySource(write(tmp_path, text), speed=10).frames()]
    assert time.monotonic() - started >= 0.18  # 2 s of recorded time at 10x
    assert [f["time"].unique().tolist() for f in frames] == [[T0], [T0 + 1000], [T0 + 2000]]


@pytest.mark.parametrize(
    ("name", "text", "kw", "match"),
    [
        ("feed.csv", "time,exchange,price\n1,a,2\n", {}, "no column pair"),
        ("feed.json", "{}", {}, "neither CSV"),
        ("feed.csv", CSV, {"speed": -1.0}, "--speed"),
        ("feed.csv", CSV, {"time_unit": "weeks"}, "--time-unit"),
    ],
    ids=["missing-column", "extension", "speed", "unit"],
)
async def test_bad_file_or_option_names_the_fix(
    tmp_path: Path, name: str, text: str, kw: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        await collect(ReplaySource(write(tmp_path, text, name), **kw))  # type: ignore[arg-type]


def test_missing_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--file"):
        ReplaySource(tmp_path / "nope.csv")
