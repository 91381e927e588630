"""InfluxDB's own clients reading through the front door's /query: the ``influx`` CLI and
the Python ``influxdb`` client (``InfluxDBClient``, ``DataFrameClient``) against the
router on uvicorn, each compared with the same client against the oracle, an unsharded
influxd holding the same points (tests/integration/influx_oracle.py)."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from influxdb import DataFrameClient, InfluxDBClient

from federation.core.shardmap import ShardMap
from federation.router.app import create_app
from federation.router.settings import RouterSettings
from federation.tools.localcluster import LocalCluster
from tests.browser import uvicorn_thread
from tests.integration.influx_oracle import CLIENTS, T0

pytestmark = pytest.mark.integration

ACCEPTANCE = "SELECT MEAN(price) FROM price WHERE time > now() - 1h GROUP BY time(10m), exchange"
HOUR = f"time >= {T0}ms AND time <= {T0 + 3_600_000}ms"
QUERIES = [
    f"SELECT mean(price) FROM price WHERE {HOUR} GROUP BY time(15m), exchange",
    f"SELECT price, volume FROM price WHERE pair = 'btcusd' AND exchange = 'kraken' AND {HOUR}",
    f"SELECT count(size), max(orders) FROM depth WHERE {HOUR} GROUP BY side",
]
QUERY_IDS = ["mean-by-window", "raw", "other-measurement"]


@pytest.fixture(scope="module")
def ports(
    influx_loaded: dict[tuple[int, int, str | None], ShardMap],
    influx_servers: tuple[LocalCluster, str],
) -> Iterator[tuple[int, int]]:
    """The router's port (over the layout whose database is ``crypto``) and the oracle's."""
    app = create_app(influx_loaded[CLIENTS], RouterSettings(rank_refresh_s=0))
    with uvicorn_thread(app) as url:
        yield int(url.rsplit(":", 1)[1]), int(influx_servers[1].rsplit(":", 1)[1])


def cli(port: int, statement: str, *options: str) -> str:
    influx = shutil.which("influx")
    assert influx, "the influx CLI is missing: scripts/ensure-system.sh installs it"
    command = [influx, "-host", "127.0.0.1", "-port", str(port), "-database", "crypto", *options]
    done = subprocess.run(
        [*command, "-execute", statement], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


@pytest.mark.parametrize("options", [(), ("-format", "json")], ids=["column", "json"])
def test_cli_acceptance_query_prints_as_against_the_oracle(
    ports: tuple[int, int], options: tuple[str, ...]
) -> None:
    for _ in range(3):  # asked again when a ten-minute window began between the two
        window = time.time() // 600
        ours, theirs = cli(ports[0], ACCEPTANCE, *options), cli(ports[1], ACCEPTANCE, *options)
        if time.time() // 600 == window:
            break
    assert "kraken" in ours
    assert ours == theirs


@pytest.mark.parametrize("statement", ["SHOW MEASUREMENTS", "SHOW DATABASES"])
def test_cli_show_prints_as_against_the_oracle(ports: tuple[int, int], statement: str) -> None:
    # influxd's own monitoring database is each server's, not the federation's data.
    theirs = "".join(
        line for line in cli(ports[1], statement).splitlines(True) if line != "_internal\n"
    )
    assert cli(ports[0], statement) == theirs


def _same(a: Any, b: Any) -> bool:
    """Equal, floats within 1e-9 (partial sums are added in another order)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("q", QUERIES, ids=QUERY_IDS)
def test_influxdb_client_query_equals_the_oracles(ports: tuple[int, int], q: str) -> None:
    ours, theirs = (
        InfluxDBClient("127.0.0.1", port, database="crypto").query(q, epoch="ms") for port in ports
    )
    assert ours.raw.get("series")
    assert _same(ours.raw, theirs.raw)


@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
@pytest.mark.parametrize("q", QUERIES, ids=QUERY_IDS)
def test_dataframe_client_query_equals_the_oracles(ports: tuple[int, int], q: str) -> None:
    ours, theirs = (
        DataFrameClient("127.0.0.1", port, database="crypto").query(q) for port in ports
    )
    assert list(ours) == list(theirs)
    for key, frame in ours.items():
        pd.testing.assert_frame_equal(frame, theirs[key], rtol=1e-9)


@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
def test_dataframe_client_index_is_the_points_times(ports: tuple[int, int]) -> None:
    """The first point of the hour is at T0 (pandas 3 must not read the client's
    nanoseconds in another unit)."""
    frame = DataFrameClient("127.0.0.1", ports[0], database="crypto").query(QUERIES[1])["price"]
    assert frame.index[0] == pd.Timestamp(T0, unit="ms", tz="UTC")
