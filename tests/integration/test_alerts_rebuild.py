"""Alerts against real influxd shards: the window rebuilt from the shards at start, and
detection fed by the ingester's observer hook."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import httpx2
import pandas as pd
import pytest

from alerts.service import AlertService
from alerts.settings import AlertSettings
from alerts.types import NewSubscription, Subscription
from federation.core.clock import now_ms
from federation.core.influx import InfluxClient
from federation.tools.localcluster import LocalCluster
from ingest.loop import Ingester
from ingest.simulated import SimulatedMarket
from ingest.writer import ShardWriter
from tests.integration.conftest import clients_for, shard_map_for

pytestmark = pytest.mark.integration

MINUTE = 60_000


@dataclass
class Written:
    writer: ShardWriter
    clients: dict[str, InfluxClient]
    history: pd.DataFrame  # every point written
    last: int  # the time of the last tick written


async def ninety_minutes(
    cluster: LocalCluster, http: httpx2.AsyncClient, replication: int
) -> Written:
    """90 minutes of 20 simulated series on the shards, up to the current minute."""
    shard_map = shard_map_for(cluster, replication)
    clients = await clients_for(shard_map, http)
    last = now_ms() // MINUTE * MINUTE
    writer = ShardWriter(shard_map, clients)
    frames = list(SimulatedMarket(series=20, seed=4).history(last - 89 * MINUTE, last + 1))
    for frame in frames:
        await writer.write(frame)
    return Written(writer, clients, pd.concat(frames, ignore_index=True), last)


async def restarted(written: Written, db_url: str) -> tuple[AlertService, Subscription]:
    config = AlertSettings(
        db_url=db_url,
        allow_networks=(ipaddress.ip_network("127.0.0.0/8"),),
    )
    service = AlertService(config, written.clients)
    new = NewSubscription(webhook="http://127.0.0.1:9/hook", email=None, metric="volume")
    sub = await service.store.create_subscription(new, 0)
    await service.start()
    return service, sub


def next_minute(service: AlertService) -> int:
    """The first tick the restarted detector takes live (the shards hold what is before)."""
    return (service.detector.history_cutoff(3600) // MINUTE + 1) * MINUTE


def hourly_volume(history: pd.DataFrame, at_ms: int) -> pd.DataFrame:
    """Mean and count of volume per series over the hour before ``at_ms``."""
    hour = history[(history.time >= at_ms - 60 * MINUTE) & (history.time < at_ms)]
    return hour.groupby(["exchange", "pair"])["volume"].agg(["mean", "size"])


@pytest.mark.parametrize("replication", [1, 2], ids=["r1", "r2"])
async def test_start_rebuilds_the_window_from_the_shards(
    cluster: LocalCluster, http: httpx2.AsyncClient, alerts_db: str, replication: int
) -> None:
    written = await ninety_minutes(cluster, http, replication)
    service, _ = await restarted(written, alerts_db)
    at = next_minute(service)
    for (exchange, pair), mean, size in hourly_volume(written.history, at).itertuples():
        stats = service.detector.window_stats(3600, exchange, pair, at)
        assert stats["volume"] == (pytest.approx(mean, rel=1e-9), size)
    await service.close()


async def test_ingester_observer_finds_the_spike_after_a_restart(
    cluster: LocalCluster, http: httpx2.AsyncClient, alerts_db: str
) -> None:
    written = await ninety_minutes(cluster, http, 1)
    service, sub = await restarted(written, alerts_db)
    at = next_minute(service)
    means = hourly_volume(written.history, at)["mean"]
    spike = written.history[written.history.time == written.last].reset_index(drop=True)
    spike["volume"] = [means[key] for key in zip(spike.exchange, spike.pair, strict=True)]
    spike.loc[:, "volume"] *= [4.0 if i == 3 else 2.5 for i in range(len(spike))]

    class Spiking:
        def snapshot(self, time_ms: int) -> pd.DataFrame:
            return spike.assign(time=time_ms)

    ingester = Ingester(Spiking(), written.writer, observers=[service.observe])
    await ingester.tick(at)
    await service.flush()
    (event,) = await service.store.events_of(sub.id)
    await service.close()
    row = spike.iloc[3]
    assert (event.payload["exchange"], event.payload["pair"]) == (row.exchange, row.pair)
    assert event.payload["mean"] == pytest.approx(means[(row.exchange, row.pair)], rel=1e-9)
