"""The periodic helper on the fake clock: schedules, the skip rule, wake, stop, errors."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from federation.core.periodic import Periodic
from tests.clock import T0_MS, FakeClock

START_MS = T0_MS + 400  # between two boundaries of any whole-second period


class Steps:
    """A step recording when it was due and when it ran; it takes ``takes_s`` of virtual
    time (or the durations in turn), then raises ``error`` when there is one."""

    def __init__(self, clock: FakeClock, takes_s: list[float] | float = 0.0) -> None:
        self.clock, self.takes_s = clock, takes_s
        self.error: Exception | None = None
        self.due: list[int] = []
        self.ran_ms: list[int] = []  # wall clock
        self.ran: list[float] = []  # monotonic seconds

    async def __call__(self, due_ms: int) -> None:
        self.due.append(due_ms)
        self.ran_ms.append(self.clock.now_ms())
        self.ran.append(self.clock.monotonic())
        takes = self.takes_s if isinstance(self.takes_s, float) else self.takes_s.pop(0)
        await self.clock.sleep(takes)
        if self.error is not None:
            raise self.error


class EarlyClock(FakeClock):
    """Waits end a millisecond before their deadline, as an event loop's timers may."""

    async def wait(self, deadline: float, *events: asyncio.Event) -> asyncio.Event | None:
        return await super().wait(deadline - 0.001, *events)


def periodic(
    period_s: float = 60.0,
    takes_s: list[float] | float = 0.0,
    clock: FakeClock | None = None,
    **options: Any,
) -> tuple[Periodic, Steps, FakeClock]:
    clock = clock or FakeClock(START_MS)
    steps = Steps(clock, takes_s)
    return Periodic(steps, period_s, name="tick", clock=clock, **options), steps, clock


@pytest.mark.parametrize("offset_s", [0.0, 2.0], ids=["on-boundary", "offset"])
async def test_aligned_runs_fall_on_wall_clock_boundaries(offset_s: float) -> None:
    ticker, steps, _ = periodic(60, aligned=True, offset_s=offset_s)
    await ticker.run(asyncio.Event(), max_runs=3)
    assert [(d - round(offset_s * 1000)) % 60_000 for d in steps.due] == [0, 0, 0]
    assert 0 < steps.due[0] - START_MS <= 60_000
    assert [b - a for a, b in zip(steps.due, steps.due[1:], strict=False)] == [60_000, 60_000]
    assert steps.ran_ms == steps.due


@pytest.mark.parametrize(
    ("takes_s", "skipped"), [(59.0, 0), (60.5, 1), (200.0, 3)], ids=["in-time", "one", "three"]
)
async def test_aligned_long_run_skips_the_boundaries_it_ran_past(
    takes_s: float, skipped: int, caplog: pytest.LogCaptureFixture
) -> None:
    ticker, steps, _ = periodic(60, [takes_s, 0.0], aligned=True)
    await ticker.run(asyncio.Event(), max_runs=2)
    assert steps.due[1] - steps.due[0] == 60_000 * (1 + skipped)
    assert ticker.skipped == skipped
    assert ("skipped them" in caplog.text) is (skipped > 0)


async def test_aligned_wait_ending_early_never_runs_a_boundary_twice() -> None:
    ticker, steps, _ = periodic(60, aligned=True, clock=EarlyClock(START_MS))
    await ticker.run(asyncio.Event(), max_runs=2)
    assert steps.due[1] - steps.due[0] == 60_000
    assert steps.ran_ms[0] == steps.due[0] - 1


async def test_not_aligned_runs_a_period_after_the_previous_run_ended() -> None:
    ticker, steps, _ = periodic(10, [3.0, 0.0, 0.0])
    await ticker.run(asyncio.Event(), max_runs=3)
    assert steps.ran == [10.0, 23.0, 33.0]


@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "not-aligned"])
async def test_immediate_runs_at_start_then_on_schedule(aligned: bool) -> None:
    ticker, steps, _ = periodic(60, immediate=True, aligned=aligned)
    await ticker.run(asyncio.Event(), max_runs=2)
    assert steps.due[0] == START_MS
    assert steps.due[1] == (START_MS // 60_000 + 1) * 60_000 if aligned else START_MS + 60_000


async def test_wake_runs_at_once() -> None:
    ticker, steps, clock = periodic(3600)
    stop = asyncio.Event()
    running = asyncio.create_task(ticker.run(stop))
    await clock.advance(5)
    ticker.wake()
    await clock.advance(1)
    stop.set()
    await running
    assert steps.ran == [5.0]


async def test_wake_during_a_run_runs_again_after_it() -> None:
    ticker, steps, clock = periodic(3600, 2.0, immediate=True)
    stop = asyncio.Event()
    running = asyncio.create_task(ticker.run(stop))
    await clock.advance(1)  # the first run is half way
    ticker.wake()
    await clock.advance(10)
    stop.set()
    await running
    assert steps.ran == [0.0, 2.0]


async def test_stop_ends_the_wait_at_once() -> None:
    ticker, steps, clock = periodic(3600)
    stop = asyncio.Event()
    running = asyncio.create_task(ticker.run(stop))
    await clock.advance(5)
    stop.set()
    await running
    assert (steps.ran, clock.monotonic()) == ([], 5.0)


async def test_stop_set_before_start_runs_nothing() -> None:
    ticker, steps, _ = periodic(60, immediate=True)
    stop = asyncio.Event()
    stop.set()
    await ticker.run(stop)
    assert steps.due == []


async def test_errors_log_counts_each_failure_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticker, steps, _ = periodic(60)
    steps.error = RuntimeError("shard down")
    await ticker.run(asyncio.Event(), max_runs=3)
    assert (ticker.runs, ticker.failures) == (3, 3)
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.exc_info is not None and r.exc_info[1] is steps.error for r in failed] == [True] * 3


async def test_errors_raise_ends_the_loop() -> None:
    ticker, steps, _ = periodic(60, errors="raise")
    steps.error = RuntimeError("bug")
    with pytest.raises(RuntimeError, match="bug"):
        await ticker.run(asyncio.Event())
    assert len(steps.due) == 1


@pytest.mark.parametrize("max_runs", [0, 1, 4], ids=["none", "one", "four"])
async def test_max_runs_ends_the_loop_after_that_many(max_runs: int) -> None:
    ticker, steps, _ = periodic(60, aligned=True)
    await ticker.run(asyncio.Event(), max_runs=max_runs)
    assert len(steps.due) == ticker.runs == max_runs


def test_period_below_a_millisecond_raises() -> None:
    with pytest.raises(ValueError, match="at least 1 ms"):
        periodic(0.0001)
