"""The front door's /query against one unsharded influxd (the oracle) holding the same
points: every query of the corpus must give the same parsed JSON from both, at 1, 3
and 4 shards with replication 1 and 2, with and without a ``placement_tag``.

The data (tests/integration/influx_oracle.py): beside the prices, it holds what
``/write`` places by another key: a ``depth`` measurement (placed by the
``placement_tag`` when the map names one, else by each series' key; some of its series
lack a tag) and price lines without a ``pair`` tag.

Floats are compared with a relative tolerance of 1e-9: the federation adds partial
sums and combines moments in another order than influxd adds points. Everything else
(series, tags, columns, times, counts, nulls, errors) must be equal.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import orjson
import pytest

from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from federation.tools.localcluster import LocalCluster
from tests.asgi import served
from tests.integration.influx_oracle import LAYOUTS, T0

pytestmark = pytest.mark.integration


A, B = f"{T0}ms", f"{T0 + 3_600_000}ms"  # the first hour
RANGE = f"time >= {A} AND time < {T0 + 10_800_000}ms"
HOUR = f"time >= {A} AND time <= {B}"
ISO = "time >= '2023-11-14T22:00:00Z' AND time < '2023-11-14T23:30:00Z'"
FUNCS = ["count", "sum", "mean", "min", "max", "first", "last", "spread", "stddev"]
# FIRST and LAST of several series whose first (last) points share a time are not
# defined by influxd: its pick depends on the order of its internal merge (of four
# series tied at one time it picks neither the largest value, as its reducer's rule
# says, nor the first series). The corpus asks them where one series holds the first
# (last) point; the federation applies the reducer's rule (the larger value).
# The same holds of the order of raw rows of several series at one time in one group
# (and of PERCENTILE's pick among equal values): the raw queries ask groups whose
# series do not share times; the federation orders such ties by the series' tags.
NO_TIES = {
    "first": "exchange = 'kraken' AND pair = 'btcusd' AND ",
    "last": "exchange = 'coinbase' AND pair = 'adabtc' AND ",
}

CORPUS: list[str | tuple[str, dict[str, str]]] = [
    # SHOW
    "SHOW MEASUREMENTS",
    "SHOW TAG KEYS",
    "SHOW TAG KEYS FROM price",
    'SHOW TAG VALUES WITH KEY = "pair"',
    'SHOW TAG VALUES FROM price WITH KEY = "exchange"',
    "SHOW TAG VALUES WITH KEY IN (pair, exchange)",
    "SHOW TAG VALUES WITH KEY =~ /ex.*/",
    "SHOW TAG VALUES WITH KEY = pair WHERE exchange = 'kraken'",
    "SHOW TAG VALUES WITH KEY = pair LIMIT 3 OFFSET 2",
    "SHOW FIELD KEYS",
    "SHOW FIELD KEYS FROM price",
    "SHOW SERIES",
    "SHOW SERIES FROM price WHERE pair = 'btcusd'",
    "SHOW SERIES WHERE exchange =~ /^k/ LIMIT 5",
    "SHOW RETENTION POLICIES",
    # raw
    f"SELECT price FROM price WHERE pair = 'btcusd' AND exchange = 'kraken' AND {HOUR}",
    f"SELECT price, volume FROM price WHERE pair = 'ethusd' AND {HOUR} GROUP BY exchange",
    f"SELECT * FROM price WHERE pair = 'solusd' AND {HOUR} GROUP BY exchange",
    f"SELECT price FROM price WHERE exchange = 'bitfinex' AND {HOUR} GROUP BY pair LIMIT 3",
    f"SELECT price FROM price WHERE {HOUR} GROUP BY * LIMIT 2 OFFSET 1 SLIMIT 3 SOFFSET 2",
    f"SELECT price FROM price WHERE pair = 'btcusd' AND {HOUR} GROUP BY exchange"
    " ORDER BY time DESC LIMIT 4",
    f"SELECT price FROM price WHERE (pair = 'btcusd' OR pair = 'adabtc') AND {HOUR}"
    " GROUP BY pair, exchange LIMIT 3",
    f"SELECT price FROM price WHERE pair =~ /usd$/ AND exchange !~ /^k/ AND {HOUR}"
    " GROUP BY pair, exchange LIMIT 2",
    # (SLIMIT counts, in influxd, the pair-less series too, which have no volume)
    f"SELECT volume FROM price WHERE pair != 'btcusd' AND pair != '' AND exchange = 'kraken'"
    f" AND {HOUR} GROUP BY pair SLIMIT 2 SOFFSET 1",
    f"SELECT price FROM price WHERE pair = 'nope' AND {HOUR}",
    f"SELECT price FROM price WHERE pair = 'dogeusd' AND {ISO} GROUP BY exchange LIMIT 5",
    "SELECT price FROM price WHERE pair = 'btcusd' AND time > now() - 3650d"
    " GROUP BY exchange LIMIT 2",
    f"SELECT price AS p FROM price WHERE pair = 'ltcusd' AND {HOUR} GROUP BY exchange LIMIT 3",
    # aggregates over everything, per tag, per window
    *[f"SELECT {f}(price) FROM price WHERE {NO_TIES.get(f, '')}{RANGE}" for f in FUNCS],
    *[f"SELECT {f}(price) FROM price WHERE {RANGE} GROUP BY pair, exchange" for f in FUNCS],
    *[
        f"SELECT {f}(volume) FROM price WHERE {NO_TIES.get(f, '')}{HOUR} GROUP BY time(10m)"
        for f in FUNCS
    ],
    *[
        f"SELECT {f}(price) FROM price WHERE {RANGE} GROUP BY time(30m), exchange, pair"
        for f in FUNCS
    ],
    *[
        f"SELECT {f}(price) FROM price WHERE pair = 'ethusd' AND {RANGE}"
        f" GROUP BY time(5m), exchange"
        for f in FUNCS
    ],
    f"SELECT count(price), mean(price), stddev(price) FROM price WHERE {RANGE} GROUP BY *",
    f"SELECT min(price), max(price), spread(price) FROM price WHERE {RANGE} GROUP BY exchange",
    f"SELECT mean(price) AS m, mean(volume) FROM price WHERE {RANGE} GROUP BY time(1h)",
    f"SELECT mean(price), mean(price) FROM price WHERE {RANGE} GROUP BY pair",
    f"SELECT max(price) FROM price WHERE pair = 'adabtc' AND {RANGE}",
    f"SELECT first(price) FROM price WHERE pair = 'xrpeur' AND {RANGE} GROUP BY exchange",
    f"SELECT last(volume) FROM price WHERE pair =~ /eur|btc/ AND {RANGE} GROUP BY pair, *",
    # computed from raw points
    f"SELECT median(price) FROM price WHERE {RANGE} GROUP BY pair, exchange",
    f"SELECT median(volume), count(volume) FROM price WHERE {HOUR} GROUP BY time(10m)",
    f"SELECT median(price) FROM price WHERE pair = 'ethusd' AND {RANGE}"
    " GROUP BY time(15m), exchange fill(none)",
    f"SELECT percentile(price, 90) FROM price WHERE pair = 'solusd' AND {RANGE} GROUP BY exchange",
    f"SELECT percentile(volume, 5) FROM price WHERE {HOUR} GROUP BY time(20m), exchange",
    f"SELECT mode(price) FROM price WHERE pair = 'btcusd' AND {RANGE} GROUP BY exchange",
    f"SELECT distinct(volume) FROM price WHERE exchange = 'kraken' AND pair = 'btcusd'"
    f" AND time >= {A} AND time < {T0 + 600_000}ms",
    f"SELECT distinct(volume) FROM price WHERE exchange = 'kraken' AND pair = 'btcusd'"
    f" AND time >= {A} AND time < {T0 + 600_000}ms GROUP BY time(2m)",
    # fill and empty windows (ethusd has gaps)
    *[
        f"SELECT mean(price) FROM price WHERE pair = 'ethusd' AND {RANGE}"
        f" GROUP BY time(5m), exchange fill({fill})"
        for fill in ["null", "none", "previous", "linear", "0", "-1.5"]
    ],
    *[
        f"SELECT count(price) FROM price WHERE pair = 'ethusd' AND {RANGE}"
        f" GROUP BY time(5m) fill({fill})"
        for fill in ["null", "none", "previous", "7"]
    ],
    f"SELECT sum(volume) FROM price WHERE {RANGE} GROUP BY time(7m, 2m) LIMIT 5",
    f"SELECT mean(price) FROM price WHERE {RANGE} GROUP BY time(20m), pair SLIMIT 3 SOFFSET 1",
    f"SELECT max(price) FROM price WHERE {RANGE} GROUP BY time(15m)"
    " ORDER BY time DESC LIMIT 3 OFFSET 1",
    f"SELECT mean(price) FROM price WHERE time >= {T0 + 20_000_000}ms AND"
    f" time < {T0 + 22_000_000}ms GROUP BY time(10m)",
    f"SELECT count(price) FROM price WHERE time > {T0}ms AND time < {T0 + 120_000}ms",
    f"SELECT count(price) FROM price WHERE time >= {T0}ms AND time <= {T0 + 120_000}ms",
    f"SELECT count(price) FROM price WHERE time >= {T0 + 30_000}ms AND"
    f" time < {T0 + 90_000}ms GROUP BY time(1m)",
    f"SELECT mean(price) FROM price WHERE {ISO} GROUP BY time(15m), pair",
    "SELECT count(price), sum(volume) FROM price",
    f"SELECT count(price) FROM price WHERE time <= {T0 + 300_000}ms GROUP BY time(1h)",
    f"SELECT count(price) FROM price WHERE {HOUR} GROUP BY time(1m) LIMIT 2 OFFSET 1",
    # Grafana's forms
    (
        'SELECT mean("price") FROM "price" WHERE ("pair" = \'btcusd\') AND'
        f' time >= {T0}ms and time <= {T0 + 3_600_000}ms GROUP BY time(1m), "exchange"'
        " fill(null)",
        {"epoch": "ms"},
    ),
    (
        'SELECT max("volume") FROM "price" WHERE'
        f" time >= {T0}ms and time <= {T0 + 7_200_000}ms GROUP BY time(5m) fill(null)",
        {"epoch": "ms"},
    ),
    (f"SELECT price FROM price WHERE pair = 'btcusd' AND {HOUR} LIMIT 3", {"epoch": "s"}),
    (f"SELECT price FROM price WHERE pair = 'btcusd' AND {HOUR} LIMIT 3", {"epoch": "u"}),
    (f"SELECT count(price) FROM price WHERE {HOUR} GROUP BY time(1h)", {"epoch": "h"}),
    # chunked
    (
        f"SELECT price FROM price WHERE pair = 'btcusd' AND {HOUR} GROUP BY exchange",
        {"chunked": "true", "chunk_size": "7"},
    ),
    (
        f"SELECT count(price) FROM price WHERE pair = 'btcusd' AND {HOUR}"
        " GROUP BY time(10m), exchange; SELECT price FROM price WHERE pair = 'nope'",
        {"chunked": "true", "chunk_size": "4"},
    ),
    (
        f"SELECT price FROM price WHERE pair = 'adabtc' AND {HOUR} GROUP BY exchange",
        {"chunked": "true"},
    ),
    ("SHOW TAG VALUES WITH KEY = pair", {"chunked": "true", "chunk_size": "3"}),
    (f"SELECT max(price) FROM price WHERE {RANGE} GROUP BY exchange", {"pretty": "true"}),
    # several statements, bind parameters
    f"SELECT count(price) FROM price WHERE {RANGE}; SHOW MEASUREMENTS;"
    f" SELECT max(volume) FROM price WHERE {RANGE} GROUP BY exchange",
    (
        f"SELECT mean(price) FROM price WHERE pair = $pair AND {RANGE} GROUP BY exchange",
        {"params": '{"pair": "solusd"}'},
    ),
    # data placed by another key than a pair (the placement_tag, else the series key)
    f"SELECT count(size) FROM depth WHERE {RANGE}",
    f"SELECT sum(orders), mean(size), stddev(size) FROM depth WHERE {RANGE} GROUP BY exchange",
    f"SELECT spread(size), max(orders) FROM depth WHERE {RANGE} GROUP BY time(30m), side",
    f"SELECT min(size) FROM depth WHERE {RANGE} GROUP BY *",
    f"SELECT count(size) FROM depth WHERE exchange = 'kraken' AND {RANGE} GROUP BY pair",
    f"SELECT mean(size) FROM depth WHERE side = '' AND {RANGE} GROUP BY time(1h)",
    f"SELECT median(size), count(size) FROM depth WHERE {HOUR} GROUP BY side",
    f"SELECT percentile(size, 75) FROM depth WHERE exchange = 'coinbase' AND {HOUR}",
    f"SELECT size FROM depth WHERE exchange = 'kraken' AND pair = 'btcusd' AND side = 'bid'"
    f" AND {HOUR} LIMIT 5",
    f"SELECT * FROM depth WHERE pair = 'ethusd' AND side = 'ask' AND {HOUR}"
    " GROUP BY exchange LIMIT 3",
    f"SELECT orders FROM depth WHERE {HOUR} GROUP BY * SLIMIT 4 SOFFSET 3 LIMIT 2",
    f"SELECT count(orders) FROM /dep/ WHERE {RANGE} GROUP BY pair",
    f"SELECT count(price), mean(price) FROM price WHERE pair = '' AND {RANGE} GROUP BY exchange",
    f"SELECT count(price) FROM price WHERE {RANGE} GROUP BY pair",
    f"SELECT count(size), count(price) FROM depth, price WHERE {RANGE} GROUP BY exchange",
    # errors
    "SELECT price FROM price WHERE pair = 'btcusd",
    "SELEC price FROM price",
    "SELECT FROM price",
    f"SELECT mean(price), volume FROM price WHERE {HOUR}",
    f"SELECT price FROM price WHERE {HOUR} GROUP BY time(1m)",
    f"SELECT price FROM price WHERE {HOUR}; SELECT",
    ("SELECT count(price) FROM price", {"db": "elsewhere"}),
    ("SHOW MEASUREMENTS", {"db": "elsewhere"}),
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or isinstance(a, str) or isinstance(b, str):
            return False
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _body(answer: httpx.Response) -> Any:
    """The parsed JSON; a chunked answer's lines, each parsed."""
    try:
        return orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return [orjson.loads(line) for line in answer.text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "layout", LAYOUTS, ids=[f"{n}shards-r{r}{'-by-' + t if t else ''}" for n, r, t in LAYOUTS]
)
async def test_corpus_answers_as_one_influxd(
    layout: tuple[int, int, str | None],
    influx_loaded: dict[tuple[int, int, str | None], ShardMap],
    influx_servers: tuple[LocalCluster, str],
) -> None:
    database = influx_loaded[layout].database
    differ = []
    app = create_app(influx_loaded[layout], RouterSettings(rank_refresh_s=0))
    async with served(app) as router, httpx.AsyncClient(base_url=influx_servers[1]) as oracle:
        for entry in CORPUS:
            q, extra = (entry, {}) if isinstance(entry, str) else entry
            expected = await oracle.get("/query", params={"db": "crypto", "q": q, **extra})
            ours_params = {"db": database, "q": q, **extra}
            if extra.get("db") == "elsewhere":
                ours_params["db"] = "elsewhere"
            got = await router.get("/query", params=ours_params)
            if got.status_code != expected.status_code or not _same(_body(got), _body(expected)):
                differ.append(
                    f"{q} {extra}\n  ours: {got.text[:600]}\n  influxd: {expected.text[:600]}"
                )
    assert len(CORPUS) >= 100
    assert differ == [], f"{len(differ)} of {len(CORPUS)} differ:\n" + "\n".join(differ)
