"""Real influxd processes for the integration tests: started here, stopped here.

They run on free loopback ports under pytest's temporary directory, so a `make run`
on the same machine is never touched. A missing influxd is an error, not a skip: CI
installs it (`make test` does), and a skipped suite would prove nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest

from federation.core import influx
from federation.core.credentials import Credentials
from federation.core.influx import InfluxClient
from federation.core.influxql import Statement
from federation.core.shardmap import Shard, ShardMap
from federation.tools.localcluster import LocalCluster, free_port


def make_cluster(root: object, shards: int) -> LocalCluster:
    shard_map = ShardMap(
        tuple(
            Shard(f"shard-{chr(97 + i)}", f"http://127.0.0.1:{free_port()}") for i in range(shards)
        )
    )
    return LocalCluster(shard_map, root=str(root), influxd=os.environ.get("INFLUXD"))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three shards shared by the session; each test module uses its own database."""
    with make_cluster(tmp_path_factory.mktemp("cluster"), 3) as local:
        yield local


@pytest.fixture
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Two shards of the test's own, for tests that stop a shard."""
    with make_cluster(tmp_path_factory.mktemp("own"), 2) as local:
        yield local


def own_statement(text: str) -> Statement:
    """A statement of a test's own, for a look at what the shards hold that does not
    depend on the catalogue under test, or a fault (the product sends only the catalogue's)."""
    return Statement(text, "test", {})


def shard_map_for(local: LocalCluster, replication: int = 1) -> ShardMap:
    """The cluster's shards with a fresh database of the test's own."""
    return ShardMap(
        local.shard_map.shards, database=f"t_{uuid.uuid4().hex[:10]}", replication=replication
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient() as client:
        yield client


async def clients_for(shard_map: ShardMap, http: httpx2.AsyncClient) -> dict[str, InfluxClient]:
    """One client per shard, with the map's database created on each."""
    clients = influx.clients_for(shard_map, http, credentials=Credentials())
    await influx.ensure_databases(clients, timeout_s=10)
    return clients


@pytest.fixture(scope="session")
def cluster4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Four shards, for growing a three-shard map by one."""
    with make_cluster(tmp_path_factory.mktemp("cluster4"), 4) as local:
        yield local


@pytest.fixture(scope="session")
def influx_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, str]]:
    """Four shard influxds and the oracle (an unsharded influxd), for the front door's
    differential corpus and its real clients."""
    from tests.integration import influx_oracle  # it imports this module

    yield from influx_oracle.started(tmp_path_factory.mktemp("influx"))


@pytest.fixture(scope="session")
def influx_loaded(
    influx_servers: tuple[LocalCluster, str],
) -> dict[tuple[int, int, str | None], ShardMap]:
    """The same points in the oracle and in every layout's database on the shards."""
    from tests.integration import influx_oracle

    return influx_oracle.load(influx_servers)
