"""The front door's /write and /ping driven by InfluxDB's own clients (the Python
``influxdb`` package and the ``influx`` CLI) against the router on uvicorn over real
influxd shards. The oracle is each shard read directly, and influxd itself for the
wording of every refusal."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from influxdb import DataFrameClient, InfluxDBClient
from influxdb.exceptions import InfluxDBClientError

from federation.core.apikeys import ApiKeys
from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from federation.tools.localcluster import LocalCluster
from tests.browser import uvicorn_thread
from tests.integration.conftest import own_statement, shard_map_for

KEY = "front-door-key-0123456789"
PAIRS = ["btcusd", "ethusd", "solusd", "adausd", "xrpusd", "dotusd"]
T0_MS = 1_700_000_000_000


def held(shard_url: str, database: str, measurement: str = "price") -> pd.DataFrame:
    """What one shard holds of ``measurement``, read from it directly (time in ns)."""
    q = own_statement(f'SELECT * FROM "{measurement}"').text
    answer = httpx.get(f"{shard_url}/query", params={"db": database, "q": q, "epoch": "ns"})
    series = answer.json()["results"][0].get("series", [])
    if not series:
        return pd.DataFrame()
    return pd.DataFrame(series[0]["values"], columns=series[0]["columns"])


def pairs_on(shard_map: ShardMap) -> dict[str, set[str]]:
    return {s.name: set(held(s.url, shard_map.database).get("pair", [])) for s in shard_map.shards}


def owned(shard_map: ShardMap, pairs: list[str]) -> dict[str, set[str]]:
    return {s.name: {p for p in pairs if s.name in shard_map.owners(p)} for s in shard_map.shards}


def create_databases(shard_map: ShardMap) -> None:
    for shard in shard_map.shards:
        q = own_statement(f"CREATE DATABASE {shard_map.database}").text
        httpx.post(f"{shard.url}/query", data={"q": q})


@pytest.fixture
def front(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, ShardMap]]:
    """The router on a real port over the session's shards, a database of the test's own."""
    shard_map = shard_map_for(cluster)
    create_databases(shard_map)
    spool = tmp_path_factory.mktemp("spool")
    settings = RouterSettings(rank_refresh_s=0, write_spool_dir=str(spool))
    with uvicorn_thread(create_app(shard_map, settings)) as url:
        yield int(url.rsplit(":", 1)[1]), shard_map


def client(port: int, database: str, **kwargs: Any) -> InfluxDBClient:
    return InfluxDBClient("127.0.0.1", port, database=database, **kwargs)


def points(pairs: list[str], exchange: str = "kraken") -> list[dict[str, Any]]:
    return [
        {
            "measurement": "price",
            "tags": {"exchange": exchange, "pair": p},
            "time": T0_MS + i,
            "fields": {"price": 1.0 + i},
        }
        for i, p in enumerate(pairs)
    ]


def test_ping_answers_as_influxd(front: tuple[int, ShardMap]) -> None:
    port, shard_map = front
    assert client(port, shard_map.database).ping() == "1.6.7"


@pytest.mark.parametrize("gzip_body", [False, True], ids=["plain", "gzip"])
def test_client_write_points_land_on_owning_shards(
    front: tuple[int, ShardMap], gzip_body: bool
) -> None:
    port, shard_map = front
    writer = client(port, shard_map.database, gzip=gzip_body)
    assert writer.write_points(points(PAIRS), time_precision="ms")
    assert pairs_on(shard_map) == owned(shard_map, PAIRS)


@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
def test_dataframe_client_write_points_land_on_owning_shards(front: tuple[int, ShardMap]) -> None:
    port, shard_map = front
    times = pd.to_datetime([T0_MS + i for i in range(len(PAIRS))], unit="ms", utc=True)
    # The client takes integers from the index as nanoseconds: pandas 3's default unit
    # (microseconds) would be written 1000 times too early, so the index is made ns.
    frame = pd.DataFrame({"price": 2.0, "exchange": "df", "pair": PAIRS}, index=times.as_unit("ns"))
    writer = DataFrameClient("127.0.0.1", port, database=shard_map.database)
    assert writer.write_points(frame, "price", tag_columns=["exchange", "pair"])
    stored = pd.concat(held(s.url, shard_map.database) for s in shard_map.shards)
    assert sorted(stored["time"]) == [(T0_MS + i) * 1_000_000 for i in range(len(PAIRS))]
    assert pairs_on(shard_map) == owned(shard_map, PAIRS)


@pytest.mark.parametrize(
    ("precision", "factor"), [("s", 10**9), ("ms", 10**6), ("u", 10**3)], ids=["s", "ms", "u"]
)
def test_client_precision_kept(front: tuple[int, ShardMap], precision: str, factor: int) -> None:
    port, shard_map = front
    point = {**points(["btcusd"])[0], "time": 1_700_000_000}
    assert client(port, shard_map.database).write_points([point], time_precision=precision)
    owner = shard_map.by_name(shard_map.owners("btcusd")[0])
    assert held(owner.url, shard_map.database)["time"].tolist() == [1_700_000_000 * factor]


def test_cli_insert_lands_on_the_owning_shard(front: tuple[int, ShardMap]) -> None:
    port, shard_map = front
    influx = shutil.which("influx")
    assert influx, "the influx CLI is missing: scripts/ensure-system.sh installs it"
    insert = "INSERT price,exchange=cli,pair=ethusd price=3.5 1700000000000000000"
    command = [influx, "-host", "127.0.0.1", "-port", str(port), "-database", shard_map.database]
    subprocess.run([*command, "-execute", insert], check=True, capture_output=True, timeout=30)
    owner = shard_map.by_name(shard_map.owners("ethusd")[0])
    assert held(owner.url, shard_map.database)["price"].tolist() == [3.5]


BAD = [
    "bad",
    "worse x",
    "m,a v=1",
    ",a=1 v=1",
    "m v=tru",
    'm v="abc',
    "m,a=1,a=2 v=1",
    "m v=1 1 2",
    "m v=1e400",
    "m v=1.5i",
    "m v=99999999999999999999i",
    "m,=1 v=1",
    "m v=1 99999999999999999999",
    "m =1",
    "m v=",
    "m v=+1",
    "m v=1 9223372036854775807",
]


@pytest.mark.parametrize("body", BAD, ids=range(len(BAD)))
def test_bad_line_refused_in_influxds_words(front: tuple[int, ShardMap], body: str) -> None:
    port, shard_map = front
    params = {"db": shard_map.database}
    ours = httpx.post(f"http://127.0.0.1:{port}/write", params=params, content=body)
    theirs = httpx.post(f"{shard_map.shards[0].url}/write", params=params, content=body)
    assert (ours.status_code, ours.json()) == (theirs.status_code, theirs.json())


def test_partial_write_keeps_the_good_lines(front: tuple[int, ShardMap]) -> None:
    port, shard_map = front
    body = gzip.compress(b"price,exchange=x,pair=btcusd price=1 1\nbad\n")
    headers = {"Content-Encoding": "gzip"}
    url = f"http://127.0.0.1:{port}/write"
    answer = httpx.post(url, params={"db": shard_map.database}, content=body, headers=headers)
    error = "partial write: unable to parse 'bad': missing fields dropped=1"
    assert (answer.status_code, answer.json()) == (400, {"error": error})
    assert pairs_on(shard_map) == owned(shard_map, ["btcusd"])


def test_client_refused_without_the_key(cluster: LocalCluster, tmp_path: Path) -> None:
    shard_map = shard_map_for(cluster)
    create_databases(shard_map)
    keys = ApiKeys(keys={"writer": KEY})
    settings = RouterSettings(rank_refresh_s=0, api=keys, write_spool_dir=str(tmp_path))
    with uvicorn_thread(create_app(shard_map, settings)) as url:
        port = int(url.rsplit(":", 1)[1])
        wrong = client(port, shard_map.database, username="writer", password="x" * 24)
        with pytest.raises(InfluxDBClientError) as refused:
            wrong.write_points(points(["btcusd"]))
        assert refused.value.code == 401
        right = client(port, shard_map.database, username="anyone", password=KEY)
        assert right.write_points(points(["btcusd"]))


def test_write_with_a_shard_down_loses_nothing(own_cluster: LocalCluster, tmp_path: Path) -> None:
    shard_map = shard_map_for(own_cluster)
    create_databases(shard_map)
    down = shard_map.by_name(shard_map.owners("btcusd")[0])
    settings = RouterSettings(rank_refresh_s=0, write_spool_dir=str(tmp_path / "spool"))
    with uvicorn_thread(create_app(shard_map, settings)) as url:
        own_cluster.stop_shard(down.name)
        writer = client(int(url.rsplit(":", 1)[1]), shard_map.database)
        assert writer.write_points(points(["btcusd"] * 3), time_precision="ms")
        assert list((tmp_path / "spool" / down.name).glob("*.lp"))  # fsynced, then answered
        own_cluster.start_shard(down.name)
        deadline = time.monotonic() + 30
        while len(stored := held(down.url, shard_map.database)) < 3:
            assert time.monotonic() < deadline, "the spool did not replay in 30 s"
            time.sleep(0.2)
    assert stored["time"].tolist() == [(T0_MS + i) * 1_000_000 for i in range(3)]
