"""The rank table's refresh loop on the fake clock: when it refreshes, and a failed one;
on-demand windows. What a table holds: tests/unit/test_rank_exact.py (fake shards) and
tests/integration/test_rank_live.py (real shards)."""

from __future__ import annotations

import asyncio

import pytest

from federation.core.durations import Duration
from federation.core.errors import Busy
from federation.core.influxql import Statement
from federation.core.types import Series
from federation.router.ranktable import RankTable
from tests.clock import FakeClock

MINUTE = 60_000
START = 1_700_000_000_000 // MINUTE * MINUTE + 10_000  # 10 s past a minute
NOW = 1_700_000_000_000


class Recorded(RankTable):
    """Over shards holding nothing; records when each refresh began, and fails the first
    ``failures`` of them."""

    def __init__(self, clock: FakeClock, failures: int = 0) -> None:
        super().__init__(self.nothing, refresh_s=60, delay_s=2, clock=clock)
        self.failures = failures
        self.refreshes: list[int] = []

    @staticmethod
    async def nothing(query: Statement) -> tuple[dict[str, list[list[Series]]], set[str]]:
        return {}, set()

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
    assert table.as_of == boundary + MINUTE  # as of the minute just passed


async def test_run_failed_first_refresh_sets_tried_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(START)
    table = Recorded(clock, failures=1)
    await run_for(table, clock, 1)
    first = (table.tried.is_set(), table.ready.is_set(), table.as_of)
    await run_for(table, clock, 60)
    assert first == (True, False, None)
    assert (table.ready.is_set(), table.as_of) == (True, table.refreshes[-1] // MINUTE * MINUTE)
    assert "rank refresh failed" in caplog.text


class OnDemand(RankTable):
    """Over shards holding nothing; counts the full STDDEV fan-outs of windows longer than
    the held hours, which wait for ``release`` while ``hold`` is set."""

    def __init__(self, max_windows: int = 64, max_builds: int = 4, hold: bool = False) -> None:
        super().__init__(self.gather, windows=(), max_windows=max_windows, max_builds=max_builds)
        self.fanouts = 0
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def gather(self, statement: Statement) -> tuple[dict[str, list[list[Series]]], set[str]]:
        if statement.kind == "stddev_range_query":
            self.fanouts += 1
            await self.release.wait()
        return {}, set()


def days(n: int, hours: int = 0, seconds: int = 0) -> Duration:
    return Duration(n * 86400 + hours * 3600 + seconds, "s")


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        (Duration(3601, "s"), 3600),
        (Duration(90, "s"), 120),
        (Duration(1, "s"), 60),
        (Duration(25, "h"), 90_000),
        (days(2, 0, 1799), 2 * 86400),
        (days(2, 0, 1800), 2 * 86400 + 3600),
    ],
    ids=["second-past-hour", "half-minute-up", "at-least-a-minute", "held", "long-down", "long-up"],
)
def test_on_demand_window_is_rounded_to_minute_or_hour(duration: Duration, seconds: int) -> None:
    assert OnDemand().rounded(duration) == seconds


async def test_on_demand_windows_that_round_alike_share_one_fanout() -> None:
    table = OnDemand()
    await table.refresh(NOW)
    await table.snapshot(days(2, 0, 1))
    await table.snapshot(days(2, 0, 59))
    assert table.fanouts == 1


async def test_on_demand_cache_drops_the_least_recently_used_window() -> None:
    table = OnDemand(max_windows=2)
    await table.refresh(NOW)
    for n in (2, 3, 2, 4, 2, 3):  # 3 is the least recently used when 4 comes in
        await table.snapshot(days(n))
    assert table.fanouts == 4


async def test_on_demand_builds_past_the_limit_are_busy_503_naming_it() -> None:
    table = OnDemand(max_builds=1, hold=True)
    await table.refresh(NOW)
    first = asyncio.create_task(table.snapshot(days(2)))
    await asyncio.sleep(0)
    with pytest.raises(Busy) as refused:
        await table.snapshot(days(3))
    shared = asyncio.create_task(table.snapshot(days(2, 0, 1)))
    table.release.set()
    await asyncio.gather(first, shared)
    assert (refused.value.status, refused.value.limit) == (503, "FEDERATION_RANK_BUILDS")
    assert (refused.value.headers["Retry-After"], table.fanouts) == ("1", 1)
