"""Every statement of the InfluxQL catalogue against real influxd: it parses, and its
answer has the shape its callers read (results, columns). Where the unit tests' fake
shard answers the same kind, its answer has the same shape as the real one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import pandas as pd
import pytest

from federation.core import influxql, rollup
from federation.core.clock import now_ms
from federation.core.durations import Duration
from federation.core.influxql import CATALOGUE, Statement, TimeRange
from federation.core.influxql_parser import parse_query
from federation.core.lineproto import batches, to_lines
from federation.core.types import Series
from federation.router.writecheck import points_written
from federation.tools.localcluster import LocalCluster
from tests.fakeshard import KINDS as FAKE_KINDS
from tests.fakeshard import FakeShard
from tests.integration.conftest import clients_for, shard_map_for

pytestmark = pytest.mark.integration

HOUR = Duration(1, "h")
STATS_COLUMNS = [
    "diskBytes",
    "fieldsCreate",
    "seriesCreate",
    "writeBytes",
    "writePointsDropped",
    "writePointsErr",
    "writePointsOk",
    "writeReq",
    "writeReqErr",
    "writeReqOk",
]
MS = 1_000_000  # nanoseconds


@dataclass(frozen=True)
class Example:
    build: Callable[[int], Statement]  # given t0, the first point's time (epoch ms)
    columns: list[list[str] | None]  # per result: its series' columns, None for no series
    execute: bool = False


def _tree(text: str) -> Any:
    """The front door's tree of one statement (what a client's query becomes)."""
    return parse_query(text).statements[0]


def _span(t0: int) -> TimeRange:
    return TimeRange(t0 - 3_600_000, t0 + 3_600_000)


EXAMPLES = {
    "create_database": Example(lambda t0: influxql.create_database("other"), [None], True),
    "prices_query": Example(
        lambda t0: influxql.prices_query("btcusd", HOUR, "ex-a"), [["time", "price", "exchange"]]
    ),
    "prices_range_query": Example(
        lambda t0: influxql.prices_range_query("btcusd", t0 - 60_000),
        [["time", "price", "exchange"]],
    ),
    "stddev_query": Example(lambda t0: influxql.stddev_query(HOUR), [["time", "stddev"]]),
    "stddev_range_query": Example(
        lambda t0: influxql.stddev_range_query(_span(t0)), [["time", "stddev"]]
    ),
    "series_query": Example(lambda t0: influxql.series_query(), [["key"]]),
    "series_of_pair_query": Example(lambda t0: influxql.series_of_pair_query("btcusd"), [["key"]]),
    "census_query": Example(lambda t0: influxql.census_query(), [["key"]]),
    "bucket_counts_query": Example(
        lambda t0: influxql.bucket_counts_query(_span(t0), 60), [["time", "count"]]
    ),
    "count_query": Example(lambda t0: influxql.count_query(_span(t0)), [["time", "count"]]),
    "moments_query": Example(
        lambda t0: influxql.moments_query(_span(t0)), [["time", "count", "mean", "stddev"]]
    ),
    "moments_query-by-minute": Example(
        lambda t0: influxql.moments_query(_span(t0), 60),
        [["time", "count", "mean", "stddev"]],
    ),
    "points_query": Example(
        lambda t0: influxql.points_query(_span(t0)), [["time", "price", "exchange", "pair"]]
    ),
    "write_stats_query": Example(lambda t0: influxql.write_stats_query(), [STATS_COLUMNS]),
    "rollup_query": Example(lambda t0: influxql.rollup_query(_span(t0), (t0,)), [None]),
    "last_prices_query": Example(lambda t0: influxql.last_prices_query(3600), [["time", "last"]]),
    "buckets_query": Example(
        lambda t0: influxql.buckets_query(t0 - 600_000, t0 + 600_000, 60),
        [["time", "price_sum", "price_count", "volume_sum", "volume_count"]],
    ),
    "pair_counts_query": Example(lambda t0: influxql.pair_counts_query(), [["time", "count"]]),
    "field_keys_query": Example(
        lambda t0: influxql.field_keys_query(), [["fieldKey", "fieldType"]]
    ),
    "pair_bounds_query": Example(
        lambda t0: influxql.pair_bounds_query("btcusd"), [["time", "first"], ["time", "last"]]
    ),
    "pair_points_query": Example(
        lambda t0: influxql.pair_points_query("btcusd", t0 * MS, (t0 + 60_000) * MS),
        [["time", "price", "volume", "exchange"]],
    ),
    "pair_stats_query": Example(
        lambda t0: influxql.pair_stats_query("btcusd", t0 * MS, (t0 + 60_000) * MS),
        [["time", "count", "sum", "count_1", "sum_1"]],
    ),
    "delete_pair_range": Example(
        lambda t0: influxql.delete_pair_range("btcusd", t0 * MS, (t0 + 60_000) * MS), [None], True
    ),
    "drop_pair_series": Example(lambda t0: influxql.drop_pair_series("btcusd"), [None], True),
    "front_select": Example(
        lambda t0: influxql.front_select(_tree("SELECT MEAN(price) FROM price GROUP BY exchange")),
        [["time", "mean"]],
    ),
    "front_selects": Example(
        lambda t0: influxql.front_selects(
            (_tree("SELECT COUNT(price) FROM price"), _tree("SELECT MAX(volume) FROM price"))
        ),
        [["time", "count"], ["time", "max"]],
    ),
    "front_show": Example(
        lambda t0: influxql.front_show(_tree("SHOW TAG VALUES WITH KEY = exchange")),
        [["key", "value"]],
    ),
}


def points(t0: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": [t0, t0 + 60_000, t0, t0],
            "exchange": ["ex-a", "ex-a", "ex-b", "ex-a"],
            "pair": ["btcusd", "btcusd", "btcusd", "ethusd"],
            "price": [100.0, 102.0, 50.0, 7.0],
            "volume": [1.0, 2.0, float("nan"), 3.0],
        }
    )


def shape(answer: list[list[Series]]) -> list[list[tuple[object, ...]]]:
    return [
        [(s.get("name"), s.get("tags"), s["columns"], len(s["values"])) for s in result]
        for result in answer
    ]


def test_every_catalogue_function_has_an_example() -> None:
    assert {e.build(0).kind for e in EXAMPLES.values()} == set(CATALOGUE)


async def run_on_influxd(
    cluster: LocalCluster, http: httpx2.AsyncClient, example: Example
) -> tuple[Statement, list[list[Series]], int]:
    """The example's statement run on a fresh database holding :func:`points`."""
    shard_map = shard_map_for(cluster)
    client = next(iter((await clients_for(shard_map, http)).values()))
    t0 = now_ms() // 60_000 * 60_000 - 120_000
    await client.write(batches(to_lines(points(t0)), 100)[0])
    statement = example.build(t0)
    run = client.execute if example.execute else client.query
    return statement, await run(statement), t0


@pytest.mark.parametrize("example", EXAMPLES.values(), ids=EXAMPLES.keys())
async def test_catalogue_statement_runs_on_influxd(
    cluster: LocalCluster, http: httpx2.AsyncClient, example: Example
) -> None:
    _, answer, _ = await run_on_influxd(cluster, http, example)
    found = [{tuple(s["columns"]) for s in result} for result in answer]
    assert found == [{tuple(c)} if c else set() for c in example.columns]


# The server's statistics list every database's storage shards: the fake holds one.
FAKED = {
    name: e
    for name, e in EXAMPLES.items()
    if e.build(0).kind in FAKE_KINDS and name != "write_stats_query"
}


@pytest.mark.parametrize("example", FAKED.values(), ids=FAKED.keys())
async def test_fake_shard_answers_in_the_shape_of_influxd(
    cluster: LocalCluster, http: httpx2.AsyncClient, example: Example
) -> None:
    statement, answer, t0 = await run_on_influxd(cluster, http, example)
    fake = FakeShard("fake", now_ms=now_ms()).seed(points(t0))
    assert shape(await fake.query(statement)) == shape(answer)


async def test_drop_pair_series_leaves_only_the_other_pairs_in_the_index(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    client = next(iter((await clients_for(shard_map_for(cluster), http)).values()))
    await client.write(batches(to_lines(points(now_ms() // 60_000 * 60_000)), 100)[0])
    await client.execute(influxql.drop_pair_series("btcusd"))
    answer = await client.query(influxql.census_query())
    assert [row[0] for row in answer[0][0]["values"]] == ["price,exchange=ex-a,pair=ethusd"]


async def test_write_stats_count_the_points_written_to_the_database(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    shard_map = shard_map_for(cluster)
    client = next(iter((await clients_for(shard_map, http)).values()))
    body = batches(to_lines(points(now_ms() // 60_000 * 60_000)), 100)[0]
    await client.write(body)
    await client.write(body)  # a rewrite of stored points counts again
    answer = await client.query(influxql.write_stats_query())
    assert points_written(answer, shard_map.database) == 2 * len(points(0))


async def test_minute_buckets_close_on_the_right(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    _, answer, t0 = await run_on_influxd(cluster, http, EXAMPLES["bucket_counts_query"])
    # points(t0): three at t0, one a minute later; (t0 - 1m, t0] holds the three
    assert answer[0][0]["values"] == [[t0 - 60_000, 3], [t0, 1]]


async def test_rollup_written_to_influxd_reads_back_whole(
    cluster: LocalCluster, http: httpx2.AsyncClient
) -> None:
    client = next(iter((await clients_for(shard_map_for(cluster), http)).values()))
    minute = now_ms() // 60_000 * 60_000 - 180_000
    moments = pd.DataFrame(
        {"exchange": ["ex-b", 'we"ird'], "pair": ["btcusd", "a\\b"], "n": [2, 1]}
    ).assign(mean=[62052.5, 0.1], m2=[0.5, 0.0])
    lines = [*rollup.minute_lines(minute, moments), rollup.tick_line(minute + 60_000, 3, 1)]
    await client.write(("\n".join(lines) + "\n").encode())
    answer = await client.query(
        influxql.rollup_query(TimeRange(minute, minute + 60_000, False, True), (minute,))
    )
    held = rollup.read(answer[0])
    got = held.moments[minute][["exchange", "pair", "n", "mean", "m2"]].reset_index(drop=True)
    assert held.complete(minute)
    assert got.to_dict("list") == moments.sort_values(["exchange", "pair"]).to_dict("list")
    assert held.ticks == [(minute + 60_000, 3, 1)]
