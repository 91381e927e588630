"""The fake shard against what it imitates: statistics' arithmetic, InfluxDB's epoch
buckets and chunks, and the errors of a real client. (Its answers' shapes are checked
against real influxd in tests/integration/test_catalogue_live.py.)"""

from __future__ import annotations

import statistics
from collections import Counter

import pandas as pd
import pytest

from federation.core import influxql
from federation.core.durations import Duration
from federation.core.errors import QueryError, ShardRejected, ShardUnavailable
from federation.core.influx import parse_series_key
from federation.core.influxql import Statement, TimeRange
from tests.fakeshard import FakeShard

T0 = 1_700_000_000_000
HOUR = 3_600_000
PRICES = [100.0, 100.5, 99.25, 101.0, 100.75]
TIMES = [T0 + i * 1_000_000 for i in range(len(PRICES))]  # 16.7 min apart: crosses hours


def shard(prices: list[float] = PRICES, pair: str = "btcusd") -> FakeShard:
    frame = pd.DataFrame(
        {"time": TIMES[: len(prices)], "exchange": "kraken", "pair": pair, "price": prices}
    )
    return FakeShard("shard-a", now_ms=TIMES[len(prices) - 1]).seed(frame)


@pytest.mark.parametrize("count", [2, 5], ids=["two", "five"])
async def test_stddev_is_the_sample_deviation(count: int) -> None:
    answer = await shard(PRICES[:count]).query(influxql.stddev_query(Duration(2, "h")))
    assert answer[0][0]["values"][0][1] == pytest.approx(statistics.stdev(PRICES[:count]))


async def test_stddev_of_one_point_is_null() -> None:
    answer = await shard(PRICES[:1]).query(influxql.stddev_query(Duration(2, "h")))
    assert answer[0][0]["values"][0][1] is None


async def test_hour_buckets_are_aligned_to_the_epoch_and_close_on_the_right() -> None:
    span = TimeRange(0, TIMES[-1] + 1)
    answer = await shard().query(influxql.bucket_counts_query(span, 3600))
    hours = Counter((t - 1) - (t - 1) % HOUR for t in TIMES)  # (h, h + 1h] holds t
    assert [tuple(v) for v in answer[0][0]["values"]] == sorted(hours.items())


async def test_moments_per_hour_match_statistics() -> None:
    answer = await shard().query(influxql.moments_query(TimeRange(0, T0 * 2), 3600))
    start = (TIMES[0] - 1) - (TIMES[0] - 1) % HOUR
    first_hour = [p for t, p in zip(TIMES, PRICES, strict=True) if t <= start + HOUR]
    _, n, mean, _ = answer[0][0]["values"][0]
    assert (n, mean) == (len(first_hour), pytest.approx(statistics.mean(first_hour)))


async def test_window_ends_at_the_injected_now() -> None:
    fake = shard()
    fake.now_ms = TIMES[-1] + 3_600_000  # an hour after the last point
    answer = await fake.query(influxql.prices_query("btcusd", Duration(1, "h")))
    assert answer == [[]]


async def test_chunks_carry_partial_but_the_last_and_hold_every_row() -> None:
    fake = shard()
    fake.chunk_size = 2
    statement = influxql.prices_query("btcusd", Duration(2, "h"))
    chunks = [c async for c in fake.query_chunks(statement)]
    whole = await fake.query(statement)
    assert [c[0].get("partial", False) for c in chunks] == [True, True, False]
    assert [v for c in chunks for v in c[0]["values"]] == whole[0][0]["values"]


async def test_series_keys_round_trip_line_protocol_escapes() -> None:
    answer = await shard(pair="e f,g=h").query(influxql.series_query())
    assert parse_series_key(answer[0][0]["values"][0][0]) == {
        "exchange": "kraken",
        "pair": "e f,g=h",
    }


async def test_write_of_a_bad_line_is_rejected_400() -> None:
    with pytest.raises(ShardRejected) as info:
        await FakeShard("shard-a").write(b"price,exchange=a,pair=b price=x 1\n")
    assert info.value.status == 400


async def test_missing_database_refuses_until_created() -> None:
    fake = FakeShard("shard-a")
    fake.has_database = False
    with pytest.raises(ShardRejected, match="404"):
        await fake.write(b"price,exchange=a,pair=b price=1 1\n")
    with pytest.raises(QueryError, match="database not found"):
        await fake.query(influxql.series_query())
    await fake.create_database()
    await fake.write(b"price,exchange=a,pair=b price=1 1\n")
    assert len(fake.points) == 1


async def test_down_shard_is_unavailable() -> None:
    fake = FakeShard("shard-a")
    fake.down = True
    with pytest.raises(ShardUnavailable):
        await fake.ping()


async def test_unknown_kind_is_not_implemented_naming_it() -> None:
    with pytest.raises(NotImplementedError, match="'no_such_kind'"):
        await FakeShard("shard-a").query(Statement("SELECT 1", "no_such_kind", {}))
