"""Time, in one place: every read of the time and every timed wait of a process.

Components take a :class:`Clock` (default :data:`SYSTEM_CLOCK`) instead of calling
``time`` and ``asyncio.sleep`` themselves, so a test can hand them a fake clock whose
time it controls and whose waits end without waiting (``tests/clock.py``).

Two times: the wall clock (epoch seconds or milliseconds: what is written, what is
aligned to) and the monotonic clock (what deadlines are measured on: it never steps
back when the wall clock is set).
"""

from __future__ import annotations

import asyncio
import math
import time
from contextlib import AbstractAsyncContextManager


def now_ms() -> int:
    """Wall-clock time as epoch milliseconds."""
    return time.time_ns() // 1_000_000


def first_set(events: tuple[asyncio.Event, ...]) -> asyncio.Event | None:
    """The first of ``events`` that is set, or None."""
    return next((event for event in events if event.is_set()), None)


class Clock:
    """The system's clocks and waits; a fake for tests overrides every method."""

    def time(self) -> float:
        """Wall-clock time as epoch seconds."""
        return time.time()

    def now_ms(self) -> int:
        """Wall-clock time as epoch milliseconds."""
        return now_ms()

    def monotonic(self) -> float:
        """Seconds on a clock that never steps back; only differences mean anything."""
        return time.monotonic()

    async def wait(self, deadline: float, *events: asyncio.Event) -> asyncio.Event | None:
        """Wait until ``monotonic()`` reaches ``deadline`` (``math.inf``: no deadline) or
        one of ``events`` is set: the (first) event set, or None at the deadline."""
        timeout = None if math.isinf(deadline) else deadline - self.monotonic()
        if first_set(events) is not None or (timeout is not None and timeout <= 0):
            return first_set(events)
        if not events:
            await (asyncio.Event().wait() if timeout is None else asyncio.sleep(timeout))
            return None
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return first_set(events)

    async def sleep(self, seconds: float) -> None:
        await self.wait(self.monotonic() + seconds)

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        """Like ``asyncio.timeout``: what runs inside is cancelled after ``seconds`` and
        the block raises ``TimeoutError``."""
        return asyncio.timeout(seconds)


SYSTEM_CLOCK = Clock()
