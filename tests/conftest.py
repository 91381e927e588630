"""Fixtures shared by the unit and the integration tests: the alerts database, on
SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from alerts.schema import metadata
from alerts.settings import database_url
from tests.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL server for the session (started on first use)."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """A database of the session's server that the alerts tests share, one at a time."""
    return postgres.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
async def alerts_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty alerts database: a SQLite file, or the PostgreSQL database, emptied of
    the alerts tables after the test (a fresh database per test costs ~0.5 s)."""
    if request.param == "sqlite":
        yield database_url(str(tmp_path / "alerts.sqlite3"))
        return
    url: str = request.getfixturevalue("postgres_url")
    yield url
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
    finally:
        await engine.dispose()
