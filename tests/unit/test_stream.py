"""The streamed merge over fake shards that answer in chunks, fail mid-way or stall."""

from __future__ import annotations

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
    rows = [(t, p, e) for batch in [b async for b in merged.batches()] for t, p, e in batch]
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
