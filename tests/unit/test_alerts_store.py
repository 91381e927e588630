"""The alerts database on a real SQLite file: subscriptions, the outbox, crossings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alerts.settings import database_url
from alerts.store import AlertStore
from alerts.types import AlertPayload, CrossingKey, NewSubscription, Subscription

NEW = NewSubscription(webhook="https://example.com/hook", email=None)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AlertStore]:
    opened = AlertStore(database_url(str(tmp_path / "alerts.sqlite3")))
    yield opened
    await opened.close()


def alert(sub: Subscription, event_id: str = "e1") -> AlertPayload:
    return AlertPayload(
        event_id=event_id,
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
        time_ms=1_700_000_000_000,
    )


async def test_subscription_round_trips_with_its_secret(store: AlertStore) -> None:
    sub = await store.create_subscription(NEW, 1)
    assert await store.get_subscription(sub.id) == sub
    assert len(sub.secret) >= 40


async def test_subscription_changes_bump_the_version(store: AlertStore) -> None:
    before = await store.subscriptions_version()
    sub = await store.create_subscription(NEW, 1)
    await store.delete_subscription(sub.id)
    assert await store.subscriptions_version() == before + 2


async def test_same_alert_recorded_twice_is_one_event(store: AlertStore) -> None:
    sub = await store.create_subscription(NEW, 1)
    assert await store.record([alert(sub), alert(sub)], [], [], 10) == 1
    assert await store.record([alert(sub)], [], [], 20) == 0
    assert [e.id for e in await store.events_of(sub.id)] == ["e1"]


async def test_alert_of_deleted_subscription_is_not_recorded(store: AlertStore) -> None:
    sub = await store.create_subscription(NEW, 1)
    await store.delete_subscription(sub.id)
    assert await store.record([alert(sub)], [], [], 10) == 0


async def test_claim_hides_event_for_the_lease(store: AlertStore) -> None:
    sub = await store.create_subscription(NEW, 1)
    await store.record([alert(sub)], [], [], 10)
    assert [c.event.id for c in await store.claim(10, 5, lease_ms=1000)] == ["e1"]
    assert await store.claim(500, 5, lease_ms=1000) == []
    assert [c.subscription for c in await store.claim(1010, 5, lease_ms=1000)] == [sub]


async def test_retry_delays_and_counts_attempts(store: AlertStore) -> None:
    sub = await store.create_subscription(NEW, 1)
    await store.record([alert(sub)], [], [], 10)
    await store.claim(10, 5, lease_ms=1000)
    await store.retry("e1", 5000, "answered 503")
    assert await store.claim(4999, 5, lease_ms=1000) == []
    (claimed,) = await store.claim(5000, 5, lease_ms=1000)
    assert (claimed.event.attempts, claimed.event.last_error) == (1, "answered 503")


@pytest.mark.parametrize("outcome", ["delivered", "failed"])
async def test_finished_event_is_never_claimed_again(store: AlertStore, outcome: str) -> None:
    sub = await store.create_subscription(NEW, 1)
    await store.record([alert(sub)], [], [], 10)
    if outcome == "delivered":
        await store.delivered("e1", 20)
    else:
        await store.failed("e1", "gone")
    assert await store.claim(10**15, 5, lease_ms=1) == []
    assert (await store.events_of(sub.id))[0].state == outcome


async def test_crossings_are_raised_and_cleared(store: AlertStore) -> None:
    sub = await store.create_subscription(NEW, 1)
    key = CrossingKey(sub.id, "kraken", "btcusd", "volume")
    await store.record([alert(sub)], [key], [], 10)
    assert await store.crossings() == [key]
    await store.record([], [], [key], 20)
    assert await store.crossings() == []


async def test_delete_drops_events_and_crossings(store: AlertStore) -> None:
    sub = await store.create_subscription(NEW, 1)
    await store.record([alert(sub)], [CrossingKey(sub.id, "kraken", "btcusd", "price")], [], 10)
    assert await store.delete_subscription(sub.id)
    assert (await store.counts(), await store.crossings()) == ({}, [])


async def test_purge_keeps_pending_events(store: AlertStore) -> None:
    sub = await store.create_subscription(NEW, 1)
    await store.record([alert(sub, "e1"), alert(sub, "e2")], [], [], 10)
    await store.delivered("e1", 20)
    assert await store.purge(before_ms=100) == 1
    assert [e.id for e in await store.events_of(sub.id)] == ["e2"]


async def test_database_uses_wal(store: AlertStore, tmp_path: Path) -> None:
    await store.ensure_schema()
    assert (tmp_path / "alerts.sqlite3-wal").exists()
