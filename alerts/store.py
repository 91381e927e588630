"""The alerts database: subscriptions, the outbox of alert events, and the raised
crossings, through SQLAlchemy (async). SQLite by default (one file, WAL mode, shared by
the router and the ingester), PostgreSQL by URL.

The outbox is the durability: the detector commits an alert here (with the crossing it
raised, in one transaction) before anything is sent; deliverers claim due events by
pushing their ``next_attempt_ms`` a lease ahead, so an event whose deliverer died
becomes due again when the lease runs out (at-least-once). Event ids are stable, so
inserting the same alert twice is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from alerts.errors import TooManySubscriptions
from alerts.schema import VERSION_KEY, crossings, events, meta, metadata, subscriptions
from alerts.types import (
    AlertPayload,
    CrossingKey,
    EventRecord,
    Metric,
    NewSubscription,
    Subscription,
)
from federation.core.errors import ConfigError


@dataclass(frozen=True)
class Claimed:
    """An event claimed for one delivery attempt, with its subscription (None when the
    subscription was deleted after the alert was recorded)."""

    event: EventRecord
    subscription: Subscription | None


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    # Our own BEGIN (below) instead of the driver's, and WAL so the router's reads never
    # wait for the ingester's writes; FULL sync: a committed alert survives a crash.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=10000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front: a transaction that reads then writes can
    # then wait its turn (busy_timeout) instead of failing on a stale snapshot.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _subscription(row: sa.Row[Any]) -> Subscription:
    return Subscription(
        webhook=row.webhook,
        email=row.email,
        pair=row.pair,
        exchange=row.exchange,
        metric=row.metric,
        factor=row.factor,
        window_s=row.window_s,
        id=row.id,
        secret=row.secret,
        created_ms=row.created_ms,
        owner=row.owner,
    )


def _event(row: sa.Row[Any]) -> EventRecord:
    payload: AlertPayload = orjson.loads(row.payload)
    return EventRecord(
        id=row.id,
        subscription_id=row.subscription_id,
        payload=payload,
        state=row.state,
        attempts=row.attempts,
        created_ms=row.created_ms,
        next_attempt_ms=row.next_attempt_ms,
        delivered_ms=row.delivered_ms,
        last_error=row.last_error,
    )


class AlertStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        try:
            self._engine = create_async_engine(url)
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"ALERTS_DB: the driver for {url.split('://')[0]} is not installed ({exc.name});"
                " fix: pip install 'crypto-federation[postgres]'"
            ) from None
        if self.is_sqlite:
            sa_event.listen(self._engine.sync_engine, "connect", _sqlite_connect)
            sa_event.listen(self._engine.sync_engine, "begin", _sqlite_begin)
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()

    async def close(self) -> None:
        await self._engine.dispose()

    def _insert(self, table: sa.Table) -> Any:
        """INSERT that ignores rows whose key exists (both dialects say it their way)."""
        dialect = sqlite if self.is_sqlite else postgresql
        return dialect.insert(table).on_conflict_do_nothing()

    async def ensure_schema(self) -> None:
        """Create the tables if missing (idempotent; the router and the ingester may race
        here, so a lost race is retried)."""
        if self._schema_ready:
            return
        async with self._schema_lock:
            if self._schema_ready:
                return
            if self.is_sqlite:
                path = self._engine.url.database
                if path and path != ":memory:":
                    if not Path(path).parent.is_dir():
                        raise ConfigError(
                            f"ALERTS_DB: the directory of {path} does not exist; "
                            "fix: create it or point ALERTS_DB elsewhere"
                        )
                    owner_only(path)
            for attempt in range(3):
                try:
                    async with self._engine.begin() as conn:
                        await conn.run_sync(metadata.create_all)
                        await conn.run_sync(_add_owner_column)
                        await conn.execute(self._insert(meta).values(key=VERSION_KEY, value=0))
                    break
                except sa.exc.DBAPIError:
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.2)
            self._schema_ready = True

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        await self.ensure_schema()
        async with self._engine.begin() as conn:
            yield conn

    # Subscriptions

    async def create_subscription(
        self,
        new: NewSubscription,
        now_ms: int,
        owner: str = "",
        *,
        max_per_owner: int | None = None,
        max_total: int | None = None,
    ) -> Subscription:
        """Store a new subscription of ``owner``; raises TooManySubscriptions when the
        owner already has ``max_per_owner`` or the store ``max_total``."""
        sub = Subscription(
            **{f: getattr(new, f) for f in NewSubscription.__dataclass_fields__},
            id=uuid.uuid4().hex,
            secret=secrets.token_urlsafe(32),
            created_ms=now_ms,
            owner=owner,
        )
        async with self._tx() as conn:
            # The version bump first: its row lock (PostgreSQL) or the write lock taken
            # at BEGIN (SQLite) makes count-then-insert atomic among routers.
            await self._bump(conn)
            count = sa.select(sa.func.count()).select_from(subscriptions)
            if max_total is not None and (await conn.scalar(count) or 0) >= max_total:
                raise TooManySubscriptions("total", max_total)
            if max_per_owner is not None:
                mine = await conn.scalar(count.where(subscriptions.c.owner == owner))
                if (mine or 0) >= max_per_owner:
                    raise TooManySubscriptions("per_key", max_per_owner)
            await conn.execute(
                subscriptions.insert().values(
                    id=sub.id,
                    webhook=sub.webhook,
                    email=sub.email,
                    pair=sub.pair,
                    exchange=sub.exchange,
                    metric=sub.metric,
                    factor=sub.factor,
                    window_s=sub.window_s,
                    secret=sub.secret,
                    created_ms=sub.created_ms,
                    owner=sub.owner,
                )
            )
        return sub

    async def _bump(self, conn: AsyncConnection) -> None:
        await conn.execute(
            meta.update().where(meta.c.key == VERSION_KEY).values(value=meta.c.value + 1)
        )

    async def list_subscriptions(self, owner: str | None = None) -> list[Subscription]:
        """Every subscription, or ``owner``'s only."""
        query = subscriptions.select().order_by(subscriptions.c.created_ms, subscriptions.c.id)
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        async with self._tx() as conn:
            return [_subscription(r) for r in await conn.execute(query)]

    async def get_subscription(self, sub_id: str) -> Subscription | None:
        async with self._tx() as conn:
            rows = await conn.execute(subscriptions.select().where(subscriptions.c.id == sub_id))
            row = rows.first()
        return None if row is None else _subscription(row)

    async def delete_subscription(self, sub_id: str) -> bool:
        """Delete a subscription with its events (delivered or not) and crossings."""
        async with self._tx() as conn:
            result = await conn.execute(subscriptions.delete().where(subscriptions.c.id == sub_id))
            if not result.rowcount:
                return False
            await conn.execute(events.delete().where(events.c.subscription_id == sub_id))
            await conn.execute(crossings.delete().where(crossings.c.subscription_id == sub_id))
            await self._bump(conn)
        return True

    async def subscriptions_version(self) -> int:
        async with self._tx() as conn:
            value = await conn.scalar(sa.select(meta.c.value).where(meta.c.key == VERSION_KEY))
        return int(value or 0)

    # Detection

    async def crossings(self) -> list[CrossingKey]:
        async with self._tx() as conn:
            rows = await conn.execute(crossings.select())
            return [CrossingKey(r.subscription_id, r.exchange, r.pair, r.metric) for r in rows]

    async def record(
        self,
        alerts: Iterable[AlertPayload],
        raised: Iterable[CrossingKey],
        cleared: Iterable[CrossingKey],
        now_ms: int,
    ) -> int:
        """Commit new alerts to the outbox and the crossing state they go with, in one
        transaction. Alerts of subscriptions deleted meanwhile are dropped. Returns the
        number of alerts new to the outbox."""
        alerts, raised, cleared = list(alerts), list(raised), list(cleared)
        ids = {a["subscription_id"] for a in alerts} | {k.subscription_id for k in raised}
        async with self._tx() as conn:
            live = set(
                (
                    await conn.scalars(
                        sa.select(subscriptions.c.id).where(subscriptions.c.id.in_(ids))
                    )
                ).all()
            )
            rows = [
                {
                    "id": a["event_id"],
                    "subscription_id": a["subscription_id"],
                    "payload": orjson.dumps(a).decode(),
                    "state": "pending",
                    "attempts": 0,
                    "created_ms": now_ms,
                    "next_attempt_ms": now_ms,
                }
                for a in alerts
                if a["subscription_id"] in live
            ]
            added = 0
            if rows:
                # RETURNING lists the rows inserted (executemany's rowcount is not reliable)
                insert = self._insert(events).returning(events.c.id)
                unique = list({row["id"]: row for row in rows}.values())
                added = len((await conn.execute(insert, unique)).all())
            keys = [{**_key(k), "since_ms": now_ms} for k in raised if k.subscription_id in live]
            if keys:
                await conn.execute(self._insert(crossings), keys)
            if cleared:
                columns = (crossings.c.subscription_id, crossings.c.exchange, crossings.c.pair)
                for metric in ("price", "volume"):
                    these = [
                        (k.subscription_id, k.exchange, k.pair)
                        for k in cleared
                        if k.metric == metric
                    ]
                    if these:
                        await conn.execute(
                            crossings.delete().where(
                                crossings.c.metric == metric, sa.tuple_(*columns).in_(these)
                            )
                        )
        return added

    # Delivery

    async def claim(self, now_ms: int, limit: int, lease_ms: int) -> list[Claimed]:
        """Up to ``limit`` due events, oldest due first, each hidden from other claims for
        ``lease_ms`` (their deliverer records the outcome before that)."""
        due = sa.and_(events.c.state == "pending", events.c.next_attempt_ms <= now_ms)
        oldest = (
            sa.select(events.c.id)
            .where(due)
            .order_by(events.c.next_attempt_ms)
            .limit(limit)
            .scalar_subquery()
        )
        # The due condition is repeated outside the subquery: on PostgreSQL a concurrent
        # claimer re-checks it on the row it waited for, and skips a row just claimed.
        claim = (
            events.update()
            .where(events.c.id.in_(oldest), due)
            .values(next_attempt_ms=now_ms + lease_ms)
            .returning(*events.c)
        )
        async with self._tx() as conn:
            claimed = [_event(r) for r in await conn.execute(claim)]
            if not claimed:
                return []
            ids = {e.subscription_id for e in claimed}
            rows = await conn.execute(subscriptions.select().where(subscriptions.c.id.in_(ids)))
            subs = {r.id: _subscription(r) for r in rows}
        return [Claimed(e, subs.get(e.subscription_id)) for e in claimed]

    async def delivered(self, event_id: str, now_ms: int) -> None:
        await self._update(
            event_id,
            state="delivered",
            delivered_ms=now_ms,
            attempts=events.c.attempts + 1,
            last_error=None,
        )

    async def retry(self, event_id: str, next_attempt_ms: int, error: str) -> None:
        await self._update(
            event_id,
            next_attempt_ms=next_attempt_ms,
            attempts=events.c.attempts + 1,
            last_error=error[:1000],
        )

    async def failed(self, event_id: str, error: str) -> None:
        """Give up on the event (kept, with the reason, for ``GET /alerts/{id}/events``)."""
        await self._update(
            event_id, state="failed", attempts=events.c.attempts + 1, last_error=error[:1000]
        )

    async def drop(self, event_id: str) -> None:
        async with self._tx() as conn:
            await conn.execute(events.delete().where(events.c.id == event_id))

    async def _update(self, event_id: str, **values: Any) -> None:
        async with self._tx() as conn:
            await conn.execute(
                events.update()
                .where(events.c.id == event_id, events.c.state == "pending")
                .values(**values)
            )

    async def events_of(self, sub_id: str, limit: int = 50) -> list[EventRecord]:
        """The subscription's most recent events, newest first."""
        query = (
            events.select()
            .where(events.c.subscription_id == sub_id)
            .order_by(events.c.created_ms.desc(), events.c.id)
            .limit(limit)
        )
        async with self._tx() as conn:
            return [_event(r) for r in await conn.execute(query)]

    async def counts(self) -> dict[str, int]:
        """Events per state."""
        query = sa.select(events.c.state, sa.func.count()).group_by(events.c.state)
        async with self._tx() as conn:
            return {state: int(n) for state, n in await conn.execute(query)}

    async def purge(self, before_ms: int) -> int:
        """Forget delivered and failed events created before ``before_ms``."""
        async with self._tx() as conn:
            result = await conn.execute(
                events.delete().where(events.c.state != "pending", events.c.created_ms < before_ms)
            )
        return max(result.rowcount, 0)


def owner_only(path: str) -> None:
    """The SQLite file (it holds the webhook secrets) and its -wal and -shm readable by
    their owner only: created so if missing, narrowed if not. SQLite gives the -wal and
    -shm files it creates the mode of the database file."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name, 0o600)


def _add_owner_column(conn: sa.Connection) -> None:
    """Databases made before subscriptions had owners get the column; their
    subscriptions belong to no key (admins see them)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns(subscriptions.name)}
    if "owner" in columns:
        return
    # SQLAlchemy Core has no ADD COLUMN construct; the column's definition is compiled
    # from the schema for the dialect.
    column = sa.schema.CreateColumn(subscriptions.c.owner).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE {subscriptions.name} ADD COLUMN {column}"))
    for index in subscriptions.indexes:
        index.create(conn, checkfirst=True)


def _key(key: CrossingKey) -> dict[str, str | Metric]:
    return {
        "subscription_id": key.subscription_id,
        "exchange": key.exchange,
        "pair": key.pair,
        "metric": key.metric,
    }
