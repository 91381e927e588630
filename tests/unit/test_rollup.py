"""The minute rollup the ingester writes: each shard's minute as pandas computes it from
the prices it was sent, only whole minutes, and the tick rows the account reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from federation.core import influxql, rollup
from federation.core.influxql import TimeRange
from federation.core.shardmap import Shard, ShardMap
from ingest.rollup import MinuteRollup
from ingest.writer import ShardWriter, WriteReport
from tests.fakeshard import FakeShard

MINUTE = 60_000
M = 1_700_000_000_000 // MINUTE * MINUTE  # a minute's start
SHARD_MAP = ShardMap(tuple(Shard(f"shard-{c}", f"http://{c}.test") for c in "ab"), replication=1)
WRITER = ShardWriter(SHARD_MAP, {})  # what deals the prices deals the rollup: never writes here
SERIES = [(e, p) for e in ("kraken", "bitstamp") for p in ("btcusd", "ethusd", "solusd")]


def frame(t: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(t, e, p, 100.0 + rng.normal(0, 5)) for e, p in SERIES]
    return pd.DataFrame(rows, columns=["time", "exchange", "pair", "price"])


def ticks(
    roll: MinuteRollup, times: list[int], report: WriteReport | None = None
) -> tuple[list[pd.DataFrame], dict[str, list[str]]]:
    """Every tick's frame, and every line the rollup gave each shard."""
    frames, out = [], {}
    for i, t in enumerate(times):
        frames.append(frame(t, i))
        for name, lines in roll.lines(t, frames[-1], report or WriteReport(), WRITER).items():
            out.setdefault(name, []).extend(lines)
    return frames, out


async def held(lines: list[str]) -> rollup.ShardRollup:
    """What a shard holding these lines answers the router, read by ``rollup.read``."""
    shard = FakeShard("held")
    await shard.write(("\n".join(lines) + "\n").encode())
    every_slot = tuple(range(M, M + 60 * MINUTE, MINUTE))
    span = TimeRange(M - 60 * MINUTE, M + 60 * MINUTE, False, True)
    return rollup.read((await shard.query(influxql.rollup_query(span, every_slot)))[0])


async def test_rollup_minute_equals_pandas_on_what_each_shard_was_sent() -> None:
    frames, out = ticks(MinuteRollup(1000), [M + s * 1000 for s in range(1, 62)])
    sent = pd.concat(frames)
    for shard in SHARD_MAP.shards:
        mine = sent[[shard.name in SHARD_MAP.owners(p) for p in sent["pair"]]]
        minute = mine[(mine["time"] > M) & (mine["time"] <= M + MINUTE)]
        expected = minute.groupby(["exchange", "pair"])["price"].agg(["count", "mean", "var"])
        got = (await held(out[shard.name])).moments[M].set_index(["exchange", "pair"]).sort_index()
        assert got["n"].tolist() == expected["count"].tolist()
        assert np.allclose(got["mean"], expected["mean"], rtol=1e-12)
        assert np.allclose(got["m2"] / (got["n"] - 1), expected["var"], rtol=1e-9)


@pytest.mark.parametrize(
    ("first_s", "whole"),
    [(1, True), (30, False)],
    ids=["from-the-first-tick", "restarted-mid-minute"],
)
async def test_rollup_writes_a_minute_only_when_it_saw_all_of_it(first_s: int, whole: bool) -> None:
    _, out = ticks(MinuteRollup(1000), [M + s * 1000 for s in range(first_s, 61)])
    assert [(await held(lines)).complete(M) for lines in out.values()] == [whole] * len(out)


async def test_rollup_writes_no_done_row_for_a_minute_a_shard_lost_points_of() -> None:
    lost = WriteReport()
    lost.failed["shard-a"] = lost.lost["shard-a"] = 6
    roll = MinuteRollup(MINUTE)
    _, out = ticks(roll, [M], WriteReport())
    _, more = ticks(roll, [M + MINUTE], lost)
    _, last = ticks(roll, [M + 2 * MINUTE])
    assert not (await held(out["shard-a"] + more["shard-a"] + last["shard-a"])).complete(M)
    assert (await held(out["shard-b"] + more["shard-b"] + last["shard-b"])).complete(M)


async def test_rollup_tick_rows_tell_points_and_late_points() -> None:
    roll = MinuteRollup(MINUTE)
    ticks(roll, [M, M + MINUTE])
    late = frame(M - 5 * MINUTE, 3)  # a source's own time, minutes behind
    out = roll.lines(
        M + 2 * MINUTE, pd.concat([frame(M + 2 * MINUTE, 4), late]), WriteReport(), WRITER
    )
    rows = {name: (await held(lines)).ticks for name, lines in out.items()}
    per_shard = {
        s.name: sum(s.name in SHARD_MAP.owners(p) for _, p in SERIES) for s in SHARD_MAP.shards
    }
    assert rows == {n: [(M + 2 * MINUTE, k, k)] for n, k in per_shard.items() if k}
