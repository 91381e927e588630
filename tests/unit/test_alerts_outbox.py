"""Delivery faults a real receiver cannot show on demand (5xx, a hang, a redirect),
injected with httpx.MockTransport; real receivers are in tests/integration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pandas as pd
import pytest

from alerts.outbox import Outbox, backoff_s
from alerts.service import AlertService
from alerts.settings import AlertSettings, database_url
from alerts.store import AlertStore
from alerts.types import AlertPayload, NewSubscription, Subscription

PUBLIC = "https://93.184.216.34/hook"  # a public address: the guard lets it through
NOW = 1_700_000_000_000
Handler = Callable[[httpx.Request], object]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AlertStore]:
    opened = AlertStore(database_url(str(tmp_path / "alerts.sqlite3")))
    yield opened
    await opened.close()


def settings(**changes: float) -> AlertSettings:
    return AlertSettings(delivery_timeout_s=0.2, retry_base_s=2.0, retry_max_s=60.0, **changes)  # type: ignore[arg-type]


def alert(sub: Subscription) -> AlertPayload:
    return AlertPayload(
        event_id="e1",
        subscription_id=sub.id,
        pair="btcusd",
        exchange="kraken",
        metric="volume",
        value=350.0,
        mean=100.0,
        factor=3.0,
        ratio=3.5,
        window="1h",
        window_seconds=3600,
        time="2023-11-14T22:13:20.000Z",
        time_ms=NOW,
    )


async def deliver_once(
    store: AlertStore, handler: Handler, url: str = PUBLIC, later_ms: int = 0, **changes: float
) -> tuple[Subscription, Outbox]:
    """One delivery round, ``later_ms`` after the alert was raised."""
    sub = await store.create_subscription(NewSubscription(webhook=url, email=None), NOW)
    await store.record([alert(sub)], [], [], NOW)

    async def respond(request: httpx.Request) -> httpx.Response:
        answer = handler(request)
        return await answer if asyncio.iscoroutine(answer) else answer  # type: ignore[no-any-return]

    async with httpx.AsyncClient(transport=httpx.MockTransport(respond)) as http:
        outbox = Outbox(store, settings(**changes), http, clock=lambda: NOW + later_ms)
        assert await outbox.poll() == 1
        await outbox.drain()
    return sub, outbox


async def test_webhook_2xx_marks_delivered(store: AlertStore) -> None:
    sub, _ = await deliver_once(store, lambda r: httpx.Response(204))
    (event,) = await store.events_of(sub.id)
    assert (event.state, event.attempts) == ("delivered", 1)


async def test_webhook_is_posted_to_the_checked_address_with_its_name(store: AlertStore) -> None:
    seen: list[httpx.Request] = []
    await deliver_once(store, lambda r: seen.append(r) or httpx.Response(200))
    assert (seen[0].url.host, seen[0].headers["host"]) == ("93.184.216.34", "93.184.216.34")
    assert seen[0].headers["x-alert-event-id"] == "e1"


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (lambda r: httpx.Response(503), "answered 503"),
        (lambda r: httpx.Response(302, headers={"Location": "http://10.0.0.1/"}), "answered 302"),
        (lambda r: asyncio.sleep(5), "no answer within"),
    ],
    ids=["5xx", "redirect-not-followed", "hang"],
)
async def test_failed_attempt_is_retried_later(
    store: AlertStore, handler: Handler, error: str
) -> None:
    sub, outbox = await deliver_once(store, handler)
    (event,) = await store.events_of(sub.id)
    assert (event.state, event.attempts, outbox.failed_attempts) == ("pending", 1, 1)
    assert error in (event.last_error or "")
    assert NOW + 1600 <= event.next_attempt_ms <= NOW + 2000


async def test_private_target_is_refused_at_delivery(store: AlertStore) -> None:
    sub, _ = await deliver_once(store, lambda r: httpx.Response(200), url="http://10.0.0.7/hook")
    (event,) = await store.events_of(sub.id)
    assert (event.state, "ALERTS_ALLOW_NETWORKS" in (event.last_error or "")) == ("pending", True)


async def test_alert_older_than_give_up_is_marked_failed(store: AlertStore) -> None:
    sub, _ = await deliver_once(
        store, lambda r: httpx.Response(500), later_ms=1000, give_up_after_s=1.0
    )
    assert (await store.events_of(sub.id))[0].state == "failed"


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [backoff_s(n, settings()) for n in range(1, 8)]
    assert all(d >= 0.8 * c for d, c in zip(delays, [2, 4, 8, 16, 32, 60, 60], strict=True))
    assert all(d <= c for d, c in zip(delays, [2, 4, 8, 16, 32, 60, 60], strict=True))
    assert delays[6] >= 48


async def test_hung_receiver_does_not_hold_up_detection(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200)

    config = AlertSettings(db_url=database_url(str(tmp_path / "a.sqlite3")), delivery_timeout_s=60)
    async with httpx.AsyncClient(transport=httpx.MockTransport(hang)) as http:
        service = AlertService(config, http=http, clock=lambda: 0)
        sub = await service.store.create_subscription(
            NewSubscription(webhook=PUBLIC, email=None, metric="volume"), 0
        )
        await service.start()
        for minute in range(61):
            volume = 900.0 if minute in (30, 60) else 100.0
            await service.observe(
                pd.DataFrame(
                    {
                        "time": [NOW + minute * 60_000],
                        "exchange": ["k"],
                        "pair": ["p"],
                        "price": [1.0],
                        "volume": [volume],
                    }
                )
            )
            if minute == 30:
                await service.flush()
                assert await service.outbox.poll() == 1  # type: ignore[union-attr]
        await service.flush()  # detection went on while the first delivery hangs
        assert len(await service.store.events_of(sub.id)) == 2
        release.set()
        await service.close()
