"""The alerts database on a real SQLite file and on a real PostgreSQL server:
subscriptions, the outbox, crossings."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from alerts.errors import TooManySubscriptions
from alerts.schema import subscriptions
from alerts.settings import database_url
from alerts.store import AlertStore
from alerts.types import AlertPayload, CrossingKey, NewSubscription, Subscription
from tests.alerts import payload

NEW = NewSubscription(webhook="https://example.com/hook", email=None)


@pytest.fixture
async def store(alerts_db: str) -> AsyncIterator[AlertStore]:
    opened = AlertStore(alerts_db)
    yield opened
    await opened.close()


def alert(sub: Subscription, event_id: str = "e1") -> AlertPayload:
    return payload(sub.id, event_id=event_id)


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


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[AlertStore]:
    opened = AlertStore(database_url(str(tmp_path / "alerts.sqlite3")))
    yield opened
    await opened.close()


async def test_database_uses_wal(sqlite_store: AlertStore, tmp_path: Path) -> None:
    await sqlite_store.ensure_schema()
    assert (tmp_path / "alerts.sqlite3-wal").exists()


async def test_sqlite_files_are_readable_by_their_owner_only(
    sqlite_store: AlertStore, tmp_path: Path
) -> None:
    await sqlite_store.create_subscription(NEW, 1)
    files = [tmp_path / f"alerts.sqlite3{suffix}" for suffix in ("", "-wal", "-shm")]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}


async def test_existing_world_readable_database_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    opened = AlertStore(database_url(str(path)))
    await opened.ensure_schema()
    await opened.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_subscriptions_are_listed_by_owner(store: AlertStore) -> None:
    mine = await store.create_subscription(NEW, 1, "alice")
    theirs = await store.create_subscription(NEW, 2, "bob")
    assert [s.id for s in await store.list_subscriptions("alice")] == [mine.id]
    assert [s.id for s in await store.list_subscriptions()] == [mine.id, theirs.id]
    assert (await store.get_subscription(theirs.id)) == theirs


@pytest.mark.parametrize(
    ("per_owner", "total", "which"),
    [(2, 10, "per_key"), (10, 3, "total")],
    ids=["per-key", "total"],
)
async def test_subscription_past_a_limit_is_refused_and_not_stored(
    store: AlertStore, per_owner: int, total: int, which: str
) -> None:
    await store.create_subscription(NEW, 1, "bob")
    for _ in range(2):
        await store.create_subscription(NEW, 1, "alice", max_per_owner=per_owner, max_total=total)
    with pytest.raises(TooManySubscriptions) as refused:
        await store.create_subscription(NEW, 1, "alice", max_per_owner=per_owner, max_total=total)
    assert refused.value.which == which
    assert len(await store.list_subscriptions()) == 3


async def test_concurrent_subscriptions_never_pass_the_total(store: AlertStore) -> None:
    async def one() -> bool:
        try:
            await store.create_subscription(NEW, 1, "alice", max_total=5)
        except TooManySubscriptions:
            return False
        return True

    made = await asyncio.gather(*(one() for _ in range(12)))
    assert (sum(made), len(await store.list_subscriptions())) == (5, 5)


async def test_database_without_owners_gets_the_column(alerts_db: str) -> None:
    old = sa.MetaData()  # the table as it was before owners
    columns = [c for c in subscriptions.c if c.name != "owner"]
    sa.Table(
        "alert_subscriptions",
        old,
        *(sa.Column(c.name, c.type, primary_key=c.primary_key) for c in columns),
    )
    engine = create_async_engine(alerts_db)
    async with engine.begin() as conn:
        await conn.run_sync(old.create_all)
        await conn.execute(
            sa.insert(old.tables["alert_subscriptions"]).values(
                id="a" * 32, webhook="https://example.com/h", factor=3.0, window_s=3600,
                secret="s", created_ms=1,
            )
        )  # fmt: skip
    await engine.dispose()
    migrated = AlertStore(alerts_db)
    try:
        assert [s.owner for s in await migrated.list_subscriptions()] == [""]
        assert (await migrated.create_subscription(NEW, 2, "alice")).owner == "alice"
    finally:
        await migrated.close()
