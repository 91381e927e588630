"""The streamed merge over fake shards that answer in chunks, fail mid-way or stall."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from federation.core.durations import Duration
from federation.core.influxql import prices_query
from federation.router.stream import MergedPrices
from tests.fakeshard import FakeShard

Rows = list[tuple[int, float, str]]


def shard(name: str, rows: Rows, **faults: object) -> FakeShard:
    """A shard holding btcusd at these (time, price, exchange), answering two rows a chunk."""
    fake = FakeShard(name, now_ms=10).seed(
        pd.DataFrame(rows, columns=["time", "price", "exchange"]).assign(pair="btcusd")
    )
    fake.chunk_size = 2
    for fault, value in faults.items():
        setattr(fake, fault, value)
    return fake


async def merge(*shards: FakeShard) -> tuple[Rows, dict[str, str]]:
    clients = {s.name: s for s in shards}
    query = prices_query("btcusd", Duration(1, "h"))
    merged = MergedPrices(clients, query, shard_timeout=0.3, deadline_s=2)
    rows = [point async for batch in merged.batches() for point in batch.points()]
    return rows, merged.missing


A = [(1, 1.0, "a"), (3, 3.0, "a"), (5, 5.0, "a")]  # chunks: [1, 3], [5]
B = [(1, 1.0, "b"), (2, 2.0, "b"), (3, 3.0, "b"), (6, 6.0, "b")]  # chunks: [1, 2], [3, 6]


async def test_merge_interleaves_chunks_in_time_order() -> None:
    rows, missing = await merge(shard("s1", A), shard("s2", B))
    assert [(t, e) for t, _, e in rows] == [
        (1, "a"),
        (1, "b"),
        (2, "b"),
        (3, "a"),
        (3, "b"),
        (5, "a"),
        (6, "b"),
    ]
    assert missing == {}


async def test_merge_keeps_one_point_per_time_and_exchange() -> None:
    rows, _ = await merge(shard("s1", A), shard("s2", A), shard("s3", A))
    assert rows == A


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("fail_after_chunks", "connection reset"), ("stall_after_chunks", "no answer within")],
    ids=["fails-mid-way", "stalls"],
)
async def test_merge_names_shard_lost_mid_way_and_keeps_what_it_sent(
    fault: str, reason: str
) -> None:
    rows, missing = await merge(shard("s1", A), shard("s2", B, **{fault: 1}))
    assert [(t, e) for t, _, e in rows] == [(1, "a"), (1, "b"), (2, "b"), (3, "a"), (5, "a")]
    assert reason in missing["s2"]


async def test_merge_of_failed_shard_at_start_is_missing() -> None:
    rows, missing = await merge(shard("s1", A), shard("s2", B, down=True))
    assert len(rows) == 3
    assert list(missing) == ["s2"]


def points(seed: int, n: int) -> Rows:
    """``n`` points of exchanges a-d at a few shared times (ties at every chunk edge), one
    per (time, exchange), in time order, as one InfluxDB holds and sends them."""
    rng = random.Random(seed)
    drawn = {(rng.randrange(20), rng.choice("abcd")): round(rng.uniform(1, 9), 3) for _ in range(n)}
    return sorted(((t, p, e) for (t, e), p in drawn.items()), key=lambda r: r[0])


def oracle(*holdings: Rows) -> Rows:
    """pandas: every shard's points, one per (time, exchange), ordered by both."""
    frame = pd.DataFrame([r for rows in holdings for r in rows], columns=["t", "p", "e"])
    frame = frame.drop_duplicates(["t", "e"]).sort_values(["t", "e"])
    return list(frame.itertuples(index=False, name=None))


@pytest.mark.parametrize(
    "layout",
    [("ab",), ("ab", ""), ("abc", "", ""), ("ab", "cd"), ("ab", "bc", "ca")],
    ids=["one-shard", "one-of-two", "one-of-three", "disjoint", "overlapping"],
)
async def test_merge_equals_pandas_on_any_layout(layout: tuple[str, ...]) -> None:
    every = points(len(layout), 80)
    holdings = [[r for r in every if r[2] in exchanges] for exchanges in layout]
    rows, missing = await merge(*(shard(f"s{i}", h) for i, h in enumerate(holdings)))
    assert (rows, missing) == (oracle(*holdings), {})


async def test_merge_keeps_one_copy_of_replicated_points() -> None:
    held = points(7, 60)
    rows, _ = await merge(shard("s1", held), shard("s2", held[::2]), shard("s3", held))
    assert rows == oracle(held)
