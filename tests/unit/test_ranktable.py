"""The rank table's refresh loop on the fake clock: when it refreshes, and a failed one.
What a table holds is tested against real shards in tests/integration/test_rank_live.py."""

from __future__ import annotations

import asyncio

import pytest

from federation.core.types import Series
from federation.router.ranktable import RankTable
from tests.clock import FakeClock

MINUTE = 60_000
START = 1_700_000_000_000 // MINUTE * MINUTE + 10_000  # 10 s past a minute


class Recorded(RankTable):
    """Over shards holding nothing; records when each refresh began, and fails the first
    ``failures`` of them."""

    def __init__(self, clock: FakeClock, failures: int = 0) -> None:
        super().__init__(self.nothing, refresh_s=60, delay_s=2, clock=clock)
        self.failures = failures
        self.refreshes: list[int] = []

    @staticmethod
    async def nothing(query: str) -> tuple[list[list[list[Series]]], set[str]]:
        return [], set()

    async def refresh(self, now_ms: int | None = None) -> None:
        self.refreshes.append(self.clock.now_ms())
        if len(self.refreshes) <= self.failures:
            raise RuntimeError("a refresh that fails for a reason nobody foresaw")
        await super().refresh(now_ms)


async def run_for(table: RankTable, clock: FakeClock, seconds: float) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(table.run(stop))
    await clock.advance(seconds)
    stop.set()
    await running


async def test_run_refreshes_at_once_then_a_delay_after_every_boundary() -> None:
    clock = FakeClock(START)
    table = Recorded(clock)
    await run_for(table, clock, 150)
    boundary = START - 10_000 + MINUTE
    assert table.refreshes == [START, boundary + 2000, boundary + MINUTE + 2000]
    assert table.as_of == table.refreshes[-1]


async def test_run_failed_first_refresh_sets_tried_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(START)
    table = Recorded(clock, failures=1)
    await run_for(table, clock, 1)
    first = (table.tried.is_set(), table.ready.is_set(), table.as_of)
    await run_for(table, clock, 60)
    assert first == (True, False, None)
    assert (table.ready.is_set(), table.as_of) == (True, table.refreshes[-1])
    assert "rank refresh failed" in caplog.text
