"""/query over fake shards: aggregates combined from partials against pandas on the raw
points, replicas counted once, pinning to owners, missing shards, refusals, errors.
Its answers against real influxd: tests/integration/test_influx_differential.py."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd
import pytest

from federation.core.shardmap import Shard, ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from tests.asgi import served
from tests.fakeshard import FakeShard, connect_to

SHARDS = tuple(Shard(f"shard-{c}", f"http://shard-{c}:8086") for c in "abcd")
T0 = 1_700_000_000_000
WHERE = f"time >= {T0}ms AND time < {T0 + 3_600_000}ms"


def raw(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        (T0 + 60_000 * m + 7_000 * k, e, p, float(rng.normal(100, 5)), float(rng.uniform(1, 9)))
        for k, p in enumerate(["btcusd", "ethusd", "solusd", "adabtc", "xrpeur"])
        for e in ["kraken", "bitfinex"]
        for m in range(60)
        if (m + k) % 7
    ]
    return pd.DataFrame(rows, columns=["time", "exchange", "pair", "price", "volume"])


def layout(replication: int, down: Collection[str] = ()) -> tuple[ShardMap, dict[str, FakeShard]]:
    """The raw points on their owners of a four-shard map."""
    shard_map = ShardMap(SHARDS, replication=replication)
    points = raw()
    fakes = {s.name: FakeShard(s, now_ms=T0) for s in SHARDS}
    for pair, rows in points.groupby("pair"):
        for owner in shard_map.owners(str(pair)):
            fakes[owner].seed(rows)
    for name in down:
        fakes[name].down = True
    return shard_map, fakes


async def ask(shard_map: ShardMap, fakes: dict[str, FakeShard], q: str, **params: str) -> Any:
    settings = RouterSettings(rank_refresh_s=0, shard_timeout=0.5, **params)  # type: ignore[arg-type]
    app = create_app(shard_map, settings, connect_to(fakes))
    async with served(app) as client:
        answer = await client.get("/query", params={"db": "crypto", "q": q, "epoch": "ms"})
    return answer


def pandas_oracle(func: str) -> dict[str, float]:
    """``func`` of price per exchange over the raw points."""
    grouped = raw().groupby("exchange")["price"]
    named = {"mean": "mean", "sum": "sum", "count": "count", "min": "min", "max": "max"}
    if func == "stddev":
        return grouped.std(ddof=1).to_dict()
    if func == "spread":
        return (grouped.max() - grouped.min()).to_dict()
    if func == "median":
        return grouped.median().to_dict()
    return grouped.agg(named[func]).to_dict()


FUNCS = ["count", "sum", "mean", "stddev", "min", "max", "spread", "median"]


@pytest.mark.parametrize("replication", [1, 2], ids=["r1", "r2"])
@pytest.mark.parametrize("func", FUNCS)
async def test_query_aggregate_equals_pandas_on_raw_points(func: str, replication: int) -> None:
    answer = await ask(
        *layout(replication), f"SELECT {func}(price) FROM price WHERE {WHERE} GROUP BY exchange"
    )
    got = {s["tags"]["exchange"]: s["values"][0][1] for s in answer.json()["results"][0]["series"]}
    assert got == pytest.approx(pandas_oracle(func), rel=1e-12)


@pytest.mark.parametrize("func", ["first", "last"])
async def test_query_selector_keeps_its_point_time(func: str) -> None:
    answer = await ask(*layout(2), f"SELECT {func}(price) FROM price WHERE {WHERE}")
    ordered = raw().sort_values(["time", "price"], ascending=[func == "first", False])
    expected = [int(ordered["time"].iloc[0]), float(ordered["price"].iloc[0])]
    assert answer.json()["results"][0]["series"][0]["values"] == [expected]


async def test_query_pinned_pair_asks_only_its_owners() -> None:
    shard_map, fakes = layout(2)
    await ask(shard_map, fakes, f"SELECT mean(price) FROM price WHERE pair = 'ethusd' AND {WHERE}")
    asked = {name for name, fake in fakes.items() if fake.statements}
    assert asked == set(shard_map.owners("ethusd"))


async def test_query_missing_shard_is_the_statements_error_naming_it() -> None:
    answer = await ask(
        *layout(1, down=["shard-b"]), f"SELECT count(price) FROM price WHERE {WHERE}"
    )
    assert "shard-b" in answer.json()["results"][0]["error"]


async def test_query_missing_shard_covered_by_replicas_answers_whole() -> None:
    q = f"SELECT count(price) FROM price WHERE {WHERE}"
    whole = await ask(*layout(2), q)
    assert (await ask(*layout(2, down=["shard-c"]), q)).json() == whole.json()


@pytest.mark.parametrize(
    ("q", "named"),
    [
        ("DROP SERIES FROM price", "DROP SERIES"),
        ("DELETE FROM price WHERE pair = 'x'", "DELETE FROM"),
        ("CREATE RETENTION POLICY r ON crypto DURATION 1d REPLICATION 1", "CREATE RETENTION"),
        ("GRANT ALL TO bob", "GRANT ALL"),
        ("KILL QUERY 1", "KILL QUERY"),
        ("SELECT price INTO other FROM price", "INTO"),
    ],
    ids=["drop", "delete", "retention", "grant", "kill", "into"],
)
async def test_query_refuses_changes_naming_the_statement(q: str, named: str) -> None:
    answer = await ask(*layout(1), q)
    assert answer.status_code == 200
    assert named in answer.json()["results"][0]["error"]


@pytest.mark.parametrize(
    "q",
    ["SELECT mean(price) * 2 FROM price", "SELECT 1 - max(price) FROM price GROUP BY exchange"],
    ids=["times", "minus"],
)
async def test_query_math_on_aggregates_refused_naming_it(q: str) -> None:
    answer = await ask(*layout(2), q)
    assert "math on aggregates" in answer.json()["results"][0]["error"]


async def test_query_create_database_of_the_federation_reaches_every_shard() -> None:
    shard_map, fakes = layout(1)
    answer = await ask(shard_map, fakes, "CREATE DATABASE crypto")
    assert answer.json() == {"results": [{"statement_id": 0}]}
    assert [f.created for f in fakes.values()] == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("q", "error"),
    [
        ("SELEC price FROM price", "error parsing query: found SELEC, expected SELECT"),
        ("SELECT price FROM", "error parsing query: found EOF, expected identifier"),
        ("", 'missing required parameter "q"'),
    ],
    ids=["keyword", "eof", "empty"],
)
async def test_query_unreadable_is_400_in_influxdbs_shape(q: str, error: str) -> None:
    answer = await ask(*layout(1), q)
    assert (answer.status_code, set(answer.json())) == (400, {"error"})
    assert answer.json()["error"].startswith(error)


async def test_query_answers_with_influxdbs_version_header() -> None:
    answer = await ask(*layout(1), "SHOW TAG VALUES WITH KEY = pair")
    assert answer.headers["X-Influxdb-Version"] == "1.6.7"


async def test_query_show_tag_values_merges_every_shard_sorted() -> None:
    answer = await ask(*layout(1), "SHOW TAG VALUES WITH KEY = pair")
    values = answer.json()["results"][0]["series"][0]["values"]
    assert values == [["pair", p] for p in sorted(raw()["pair"].unique())]


async def test_query_raw_points_past_the_row_limit_name_it() -> None:
    q = f"SELECT median(price) FROM price WHERE {WHERE}"
    answer = await ask(*layout(1), q, influx_max_rows="10")
    assert "FEDERATION_INFLUX_MAX_ROWS (10)" in answer.json()["results"][0]["error"]


@pytest.mark.parametrize("max_rows", ["10", "700"], ids=["one-chunk", "across-shards"])
async def test_query_raw_select_past_the_row_limit_names_it(max_rows: str) -> None:
    q = f"SELECT price FROM price WHERE {WHERE}"
    answer = await ask(*layout(2), q, influx_max_rows=max_rows)
    assert f"FEDERATION_INFLUX_MAX_ROWS ({max_rows})" in answer.json()["results"][0]["error"]


async def test_query_raw_select_within_the_row_limit_is_whole() -> None:
    q = f"SELECT price FROM price WHERE {WHERE}"
    answer = await ask(*layout(2), q, influx_max_rows=str(len(raw()) * 2))
    assert sum(len(s["values"]) for s in answer.json()["results"][0]["series"]) == len(raw())


async def test_query_windows_past_the_row_limit_name_it() -> None:
    q = f"SELECT mean(price) FROM price WHERE time >= {T0}ms GROUP BY time(1s)"
    answer = await ask(*layout(1), q, influx_max_rows="100")
    assert "FEDERATION_INFLUX_MAX_ROWS (100)" in answer.json()["results"][0]["error"]


async def test_query_raw_select_counts_replicas_once() -> None:
    q = f"SELECT price FROM price WHERE pair = 'btcusd' AND exchange = 'kraken' AND {WHERE}"
    answer = await ask(*layout(2), q)
    rows = raw().query("pair == 'btcusd' and exchange == 'kraken'")
    expected = rows[["time", "price"]].sort_values("time").to_numpy().tolist()
    assert answer.json()["results"][0]["series"][0]["values"] == expected


async def test_query_post_form_body_is_read() -> None:
    shard_map, fakes = layout(1)
    app = create_app(shard_map, RouterSettings(rank_refresh_s=0), connect_to(fakes))
    async with served(app) as client:
        answer = await client.post(
            "/query", data={"db": "crypto", "q": "SHOW TAG VALUES WITH KEY = exchange"}
        )
    assert answer.json()["results"][0]["series"][0]["values"] == [
        ["exchange", "bitfinex"],
        ["exchange", "kraken"],
    ]
