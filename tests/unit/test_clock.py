"""The system clock's waits (in milliseconds of real time) and the fake clock's jumps."""

from __future__ import annotations

import asyncio
import math

import pytest

from federation.core.clock import SYSTEM_CLOCK, Clock
from tests.clock import T0_MS, FakeClock


@pytest.mark.parametrize("clock", [SYSTEM_CLOCK, FakeClock()], ids=["system", "fake"])
async def test_wait_returns_the_event_set_meanwhile(clock: Clock) -> None:
    first, second = asyncio.Event(), asyncio.Event()
    asyncio.get_running_loop().call_soon(second.set)
    assert await clock.wait(math.inf, first, second) is second


@pytest.mark.parametrize("clock", [SYSTEM_CLOCK, FakeClock()], ids=["system", "fake"])
async def test_wait_returns_none_at_the_deadline(clock: Clock) -> None:
    deadline = clock.monotonic() + 0.01
    assert await clock.wait(deadline, asyncio.Event()) is None
    assert clock.monotonic() >= deadline


@pytest.mark.parametrize("clock", [SYSTEM_CLOCK, FakeClock()], ids=["system", "fake"])
async def test_wait_with_the_event_already_set_returns_it_past_the_deadline(clock: Clock) -> None:
    event = asyncio.Event()
    event.set()
    assert await clock.wait(clock.monotonic() - 1, event) is event


@pytest.mark.parametrize("clock", [SYSTEM_CLOCK, FakeClock()], ids=["system", "fake"])
async def test_timeout_cancels_what_runs_longer(clock: Clock) -> None:
    started = clock.monotonic()
    with pytest.raises(TimeoutError):
        async with clock.timeout(0.01):
            await clock.sleep(10)
    assert 0.01 <= clock.monotonic() - started < 5


async def test_fake_time_moves_only_by_waits_on_it() -> None:
    clock = FakeClock()
    await asyncio.sleep(0)
    assert (clock.now_ms(), clock.monotonic()) == (T0_MS, 0.0)
    await clock.advance(90.5)
    assert (clock.now_ms(), clock.monotonic(), clock.time()) == (T0_MS + 90_500, 90.5, 1.7e9 + 90.5)


async def test_fake_wait_with_nothing_ever_due_raises() -> None:
    with pytest.raises(RuntimeError, match="nothing is due"):
        await FakeClock().wait(math.inf, asyncio.Event())


async def test_fake_time_holds_while_a_gather_takes_its_last_answer() -> None:
    clock, loop = FakeClock(), asyncio.get_running_loop()
    answer: asyncio.Future[None] = loop.create_future()
    gathered = asyncio.ensure_future(asyncio.gather(answer))
    waited = asyncio.ensure_future(clock.sleep(5))
    await asyncio.sleep(0)
    # The jump's check landing after the last child ended, before the gather's callback.
    loop.call_soon(lambda: (answer.set_result(None), clock._autojump()))
    await gathered
    assert (clock.monotonic(), waited.done()) == (0.0, False)
    waited.cancel()
