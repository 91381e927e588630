"""The oracle and the federation holding the same points, shared by the front door's
differential corpus (test_influx_differential.py) and its real clients
(test_influx_clients_read.py): four shard influxds, one unsharded influxd (the oracle,
database ``crypto``), and for each layout a database of its own on the shards, every
line on the owners of its placement key (as ``/write`` places it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import numpy as np
import pandas as pd

from federation.core.lineproto import escape_tag, to_lines
from federation.core.placement import placement_key
from federation.core.shardmap import ShardMap
from federation.tools.localcluster import LocalCluster
from tests.integration.conftest import make_cluster

T0 = 1_699_999_200_000  # 2023-11-14T22:00:00Z, in ms
EXCHANGES = ["bitfinex", "kraken", "coinbase"]
PAIRS = ["btcusd", "ethusd", "solusd", "adabtc", "dogeusd", "xrpeur", "ltcusd", "dotusd"]
MINUTES = 180
# (shards, replication, placement_tag)
LAYOUTS: list[tuple[int, int, str | None]] = [
    (1, 1, None),
    (3, 1, None),
    (3, 2, None),
    (4, 1, None),
    (4, 2, None),
    (3, 2, "exchange"),
]
CLIENTS = (3, 2, "exchange")  # the layout the real clients read


def recent(now_ms: int) -> pd.DataFrame:
    """The last two hours, a minute apart, of four pairs on every exchange, each price a
    whole number that changes only at ten-minute boundaries: the mean of any window of
    ``GROUP BY time(10m)`` after ``now() - 1h`` is the same whenever it is asked (sums
    of whole numbers are exact in any order)."""
    start = now_ms - now_ms % 60_000 - 120 * 60_000
    times = start + 60_000 * np.arange(120)
    return pd.DataFrame(
        [
            (t, e, p, float(1000 + 10 * ((t // 600_000) % 50) + 3 * k + j), 1.0)
            for t in times.tolist()
            for j, e in enumerate(EXCHANGES)
            for k, p in enumerate(PAIRS[:4])
        ],
        columns=["time", "exchange", "pair", "price", "volume"],
    )


def points() -> pd.DataFrame:
    """Three hours a minute apart; some series on the minute, others half a minute off;
    some pairs with gaps (whole quarter hours missing); one series absent."""
    rng = np.random.default_rng(14)
    frames = []
    for e in EXCHANGES:
        for k, p in enumerate(PAIRS):
            if (e, p) == ("kraken", "xrpeur"):
                continue
            minutes = np.arange(MINUTES)
            if k % 3 == 1:
                minutes = minutes[(minutes // 15) % 4 != 2]
            shift = 30_000 if k % 2 else 0
            base = 10.0 ** (k % 5)
            frames.append(
                pd.DataFrame(
                    {
                        "time": T0 + shift + 60_000 * minutes,
                        "exchange": e,
                        "pair": p,
                        "price": base * np.exp(np.cumsum(rng.normal(0, 0.01, len(minutes)))),
                        "volume": np.round(rng.uniform(1, 10, len(minutes)), 3),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def other_lines() -> list[tuple[str, dict[str, str], str]]:
    """Lines that are not a pair's price, with their measurement and tags: order-book
    depth every two minutes per (exchange, pair, side), a few series without ``side``,
    and an index price without a ``pair`` tag; each series at its own second, so no
    two series share a time."""
    rng = np.random.default_rng(41)
    out = []
    series = [
        {"exchange": e, "pair": p, **({"side": side} if side else {})}
        for e in EXCHANGES
        for p in PAIRS[:4]
        for side in ("bid", "ask", "")
    ]
    for k, tags in enumerate(series):
        key = "depth" + "".join(f",{n}={escape_tag(v)}" for n, v in sorted(tags.items()))
        for m in range(0, MINUTES, 2):
            size, orders = rng.uniform(0.5, 50), int(rng.integers(1, 40))
            stamp = T0 + 60_000 * m + 1_000 * (k + 1)
            out.append(("depth", tags, f"{key} size={size:.4f},orders={orders}i {stamp}"))
    for e in EXCHANGES:
        for m in range(MINUTES):
            price = 100 + float(rng.normal(0, 1))
            stamp = T0 + 60_000 * m + 500 * (1 + EXCHANGES.index(e))
            out.append(("price", {"exchange": e}, f"price,exchange={e} price={price} {stamp}"))
    return out


def started(root: Path) -> Iterator[tuple[LocalCluster, str]]:
    """Four shard influxds and the oracle (its URL)."""
    with make_cluster(root / "shards", 4) as shards, make_cluster(root / "oracle", 1) as oracle:
        yield shards, oracle.shard_map.shards[0].url


def write(url: str, database: str, lines: list[str]) -> None:
    httpx2.post(f"{url}/query", data={"q": f'CREATE DATABASE "{database}"'}).raise_for_status()
    body = ("\n".join(lines) + "\n").encode()
    answer = httpx2.post(f"{url}/write", params={"db": database, "precision": "ms"}, content=body)
    assert answer.status_code == 204, answer.text


def load(servers: tuple[LocalCluster, str]) -> dict[tuple[int, int, str | None], ShardMap]:
    """The points in the oracle's database ``crypto`` and, for each layout, in a
    database of its own on its shards (``crypto`` for :data:`CLIENTS`, so a client
    names the same database on both), each line on the owners of its placement key."""
    shards, oracle = servers
    frame = pd.concat([points(), recent(int(time.time() * 1000))], ignore_index=True)
    lines = to_lines(frame)
    others = other_lines()
    write(oracle, "crypto", lines + [line for _, _, line in others])
    maps = {}
    for layout in LAYOUTS:
        count, replication, tag = layout
        shard_map = ShardMap(
            shards.shard_map.shards[:count],
            database="crypto" if layout == CLIENTS else f"crypto_{uuid.uuid4().hex[:8]}",
            replication=replication,
            placement_tag=tag,
        )
        held: dict[str, list[str]] = {s.name: [] for s in shard_map.shards}
        for line, pair in zip(lines, frame["pair"], strict=True):
            for owner in shard_map.owners(pair):
                held[owner].append(line)
        for measurement, tags, line in others:
            for owner in shard_map.owners(placement_key(measurement, tags, tag)):
                held[owner].append(line)
        for shard in shard_map.shards:
            write(shard.url, shard_map.database, held[shard.name])
        maps[layout] = shard_map
    return maps
