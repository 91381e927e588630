"""Alerts from detection to a real webhook receiver and a real SMTP server, through the
outbox on a real SQLite file and on a real PostgreSQL server: the numbers, the
signature, down receivers, restarts."""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pandas as pd
import pytest

from alerts.service import AlertService
from alerts.settings import AlertSettings
from alerts.signing import verify
from alerts.types import NewSubscription, Subscription
from federation.core.clock import now_ms
from tests.clock import ShiftedClock
from tests.integration.alerts_servers import SmtpServer, WebhookReceiver

pytestmark = pytest.mark.integration

MINUTE = 60_000
# A day ahead: after the history cutoff of any window made while the tests run.
T0 = now_ms() // MINUTE * MINUTE + 86_400_000
ROOT = Path(__file__).resolve().parents[2]


def settings(db_url: str, smtp_port: int = 25) -> AlertSettings:
    return AlertSettings(
        db_url=db_url,
        allow_networks=(ipaddress.ip_network("127.0.0.0/8"),),
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        delivery_timeout_s=2.0,
        retry_base_s=0.05,
        retry_max_s=0.2,
        poll_interval_s=0.05,
    )


def tick(minute: int, volumes: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": T0 + minute * MINUTE,
            "exchange": "kraken",
            "pair": list(volumes),
            "price": 10.0,
            "volume": list(volumes.values()),
        }
    )


async def calm_hour(service: AlertService, pairs: list[str]) -> None:
    for minute in range(60):
        await service.observe(tick(minute, dict.fromkeys(pairs, 100.0)))


async def until(check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Wait (bounded) for what the background delivery should bring about."""
    for _ in range(int(timeout_s / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not delivered in time")


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    server.start()
    yield server
    server.stop()


async def subscribe(service: AlertService, **fields: object) -> Subscription:
    new = NewSubscription(**{"webhook": None, "email": None, **fields})  # type: ignore[arg-type]
    return await service.store.create_subscription(new, now_ms())


async def running(service: AlertService) -> tuple[asyncio.Event, asyncio.Task[None]]:
    await service.start()
    stop = asyncio.Event()
    return stop, asyncio.create_task(service.run(stop))


async def stopped(service: AlertService, stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await task
    await service.close()


async def test_spike_reaches_webhook_once_with_signed_numbers(
    alerts_db: str, receiver: WebhookReceiver
) -> None:
    service = AlertService(settings(alerts_db))
    sub = await subscribe(service, webhook=receiver.url, metric="volume")
    stop, task = await running(service)
    await calm_hour(service, ["btcusd"])
    for minute, volume in ((60, 350.0), (61, 400.0)):  # the second is the same crossing
        await service.observe(tick(minute, {"btcusd": volume}))
    await until(lambda: len(receiver.calls) >= 1)
    await stopped(service, stop, task)
    ((headers, body),) = receiver.calls
    alert = orjson.loads(body)
    assert (alert["value"], alert["mean"], alert["factor"]) == (350.0, 100.0, 3.0)
    assert (alert["pair"], alert["subscription_id"], alert["time_ms"]) == (
        "btcusd",
        sub.id,
        T0 + 60 * MINUTE,
    )
    assert verify(sub.secret, body, headers["x-alert-signature"])


async def test_spike_reaches_email_subscriber(alerts_db: str) -> None:
    with SmtpServer() as smtp:
        service = AlertService(settings(alerts_db, smtp.port))
        await subscribe(service, email="ops@example.com", pair="ethusd")
        stop, task = await running(service)
        await calm_hour(service, ["btcusd", "ethusd"])
        await service.observe(tick(60, {"btcusd": 900.0, "ethusd": 500.0}))
        await until(lambda: len(smtp.messages) >= 1)
        await stopped(service, stop, task)
    (message,) = smtp.messages
    assert message["To"] == "ops@example.com"
    assert "ethusd on kraken: volume 5.00x its 1h mean" in message["Subject"]
    assert message["X-Alert-Event-Id"] in message["Message-ID"]


async def test_subscriptions_changed_while_running_are_followed(
    alerts_db: str, receiver: WebhookReceiver
) -> None:
    service = AlertService(settings(alerts_db))
    stop, task = await running(service)
    sub = await subscribe(service, webhook=receiver.url, metric="volume")
    await until(lambda: service.detector.windows == {3600: True})
    await calm_hour(service, ["btcusd"])
    await service.observe(tick(60, {"btcusd": 900.0}))
    await until(lambda: len(receiver.calls) == 1)
    await service.store.delete_subscription(sub.id)
    await until(lambda: not service.detector.subscriptions)
    for minute, volume in ((61, 100.0), (62, 5000.0)):
        await service.observe(tick(minute, {"btcusd": volume}))
    await service.flush()
    await stopped(service, stop, task)
    assert len(receiver.calls) == 1


async def test_below_threshold_sends_nothing(alerts_db: str, receiver: WebhookReceiver) -> None:
    service = AlertService(settings(alerts_db))
    await subscribe(service, webhook=receiver.url)
    stop, task = await running(service)
    await calm_hour(service, ["btcusd"])
    await service.observe(tick(60, {"btcusd": 299.0}))
    await service.flush()
    counts = await service.store.counts()
    await stopped(service, stop, task)
    assert (counts, receiver.calls) == ({}, [])


async def test_receiver_down_then_up_gets_every_alert_once(alerts_db: str) -> None:
    receiver = WebhookReceiver()  # not started: connections are refused
    service = AlertService(settings(alerts_db))
    sub = await subscribe(service, webhook=receiver.url, metric="volume")
    stop, task = await running(service)
    pairs = ["btcusd", "ethusd", "solusd"]
    await calm_hour(service, pairs)
    await service.observe(tick(60, dict.fromkeys(pairs, 1000.0)))
    await service.flush()
    await until(lambda: service.outbox is not None and service.outbox.failed_attempts >= 6)
    receiver.start()
    try:
        await until(lambda: len(receiver.calls) >= 3)
        await asyncio.sleep(0.3)  # room for a duplicate to show up, if one were coming
        events = await service.store.events_of(sub.id)
    finally:
        await stopped(service, stop, task)
        receiver.stop()
    assert sorted(receiver.event_ids()) == sorted(e.id for e in events)
    assert len(set(receiver.event_ids())) == 3
    assert all(e.state == "delivered" and e.attempts >= 3 for e in events)


# The detecting process: subscribes, sees a spike, commits it, then waits to be killed.
DETECTOR = """
import asyncio, sys
from tests.integration import test_alerts_delivery as t

async def main():
    service = t.AlertService(t.settings(sys.argv[1]))
    await t.subscribe(service, webhook=sys.argv[2], metric="volume")
    await service.start()
    await t.calm_hour(service, ["btcusd"])
    await service.observe(t.tick(60, {"btcusd": 800.0}))
    await service.flush()
    print("recorded", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_process_killed_between_detection_and_delivery_still_delivers(
    alerts_db: str, receiver: WebhookReceiver
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DETECTOR, alerts_db, receiver.url, stdout=PIPE, cwd=ROOT
    )
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), 60) == b"recorded\n"
    child.kill()  # SIGKILL: no clean-up of any kind
    await child.wait()
    assert receiver.calls == []
    second = AlertService(settings(alerts_db))
    stop, task = await running(second)
    await until(lambda: len(receiver.calls) == 1)
    await stopped(second, stop, task)
    assert orjson.loads(receiver.calls[0][1])["value"] == 800.0


async def test_claim_of_a_dead_deliverer_is_delivered_after_its_lease(
    alerts_db: str, receiver: WebhookReceiver
) -> None:
    first = AlertService(settings(alerts_db))
    await subscribe(first, webhook=receiver.url, metric="volume")
    await first.start()
    await calm_hour(first, ["btcusd"])
    await first.observe(tick(60, {"btcusd": 800.0}))
    await first.flush()
    assert len(await first.store.claim(now_ms(), 10, lease_ms=60_000)) == 1  # then it dies
    await first.close()
    later = AlertService(settings(alerts_db), clock=ShiftedClock(61.0))
    stop, task = await running(later)
    await until(lambda: len(receiver.calls) == 1)
    await stopped(later, stop, task)
