"""Clocks for tests: virtual time that jumps, and the system clock set ahead.

``FakeClock`` keeps virtual time that moves only by jumps. Whenever every task of the
event loop waits, on the clock (``wait``, ``sleep``, ``advance``) or on other tasks (a
task, a gather), time jumps at once to the earliest deadline (a wait's, a ``timeout``'s)
and what was due there runs: an autojump. A task that is ready to run or waits on
anything else (a response, a thread, an event, a real ``asyncio.sleep``), or a callback
due to run, holds time still, so a step takes no virtual time unless it sleeps on the
clock, and a loop under test runs its whole schedule in no real time::

    clock = FakeClock()
    await Ingester(source, writer, interval_s=60, clock=clock).run(stop, max_ticks=3)

A test lets virtual time pass while background tasks run with ``advance``; a test that
waits on an event instead keeps the time where it is."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from federation.core.clock import Clock, first_set, now_ms

T0_MS = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC: the default start of virtual time
# What a task awaiting other tasks waits on: a task, or what asyncio.gather returns.
_ON_TASKS = (asyncio.Task, getattr(asyncio.tasks, "_GatheringFuture"))  # noqa: B009 (not typed)


@dataclass(order=True)
class _Timer:
    due_ns: int
    seq: int
    fire: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


@dataclass
class _Wait:
    woken: asyncio.Future[None]
    events: tuple[asyncio.Event, ...]

    def over(self) -> bool:
        return self.woken.done() or first_set(self.events) is not None


class FakeClock(Clock):
    """Virtual time from ``start_ms`` (wall) and 0 (monotonic), moved by its waits."""

    def __init__(self, start_ms: int = T0_MS) -> None:
        self._start_ns = start_ms * 1_000_000
        self._elapsed_ns = 0
        self._timers: list[_Timer] = []  # a heap
        self._seq = itertools.count()
        self._waits: dict[asyncio.Task[object], _Wait] = {}
        self._watchers: set[asyncio.Task[object]] = set()  # the event waits inside wait()
        self._check: asyncio.Handle | None = None
        self._check_soon = False

    def time(self) -> float:
        return (self._start_ns + self._elapsed_ns) / 1e9

    def now_ms(self) -> int:
        return (self._start_ns + self._elapsed_ns) // 1_000_000

    def monotonic(self) -> float:
        return self._elapsed_ns / 1e9

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, everything due meanwhile running."""
        await self.sleep(seconds)

    async def wait(self, deadline: float, *events: asyncio.Event) -> asyncio.Event | None:
        due_ns: float = math.inf if math.isinf(deadline) else round(deadline * 1e9)
        if first_set(events) is not None or due_ns <= self._elapsed_ns:
            return first_set(events)
        task = asyncio.current_task()
        assert task is not None
        woken = asyncio.get_running_loop().create_future()
        timer = None if math.isinf(due_ns) else self._at(int(due_ns), lambda: _done(woken))
        watchers = {asyncio.ensure_future(event.wait()) for event in events}
        self._watchers |= watchers
        self._waits[task] = _Wait(woken, events)
        self._look(soon=True)
        try:
            await asyncio.wait({woken, *watchers}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            del self._waits[task]
            self._watchers -= watchers
            for watcher in watchers:
                watcher.cancel()
            if timer is not None:
                timer.cancelled = True
        if woken.done():
            woken.result()  # raises when the loop is stuck
        return first_set(events)

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        return self._timeout(seconds)

    @asynccontextmanager
    async def _timeout(self, seconds: float) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = self._at(self._elapsed_ns + round(seconds * 1e9), expire)
        try:
            yield
        except asyncio.CancelledError:
            if expired and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            timer.cancelled = True

    def _at(self, due_ns: int, fire: Callable[[], None]) -> _Timer:
        timer = _Timer(due_ns, next(self._seq), fire)
        heapq.heappush(self._timers, timer)
        return timer

    def _look(self, *, soon: bool) -> None:
        """Check for the autojump on the next turn of the loop (soon) or in a moment."""
        if self._check is not None and (self._check_soon or not soon):
            return
        if self._check is not None:
            self._check.cancel()
        loop = asyncio.get_running_loop()
        self._check = (
            loop.call_soon(self._autojump) if soon else loop.call_later(1e-3, self._autojump)
        )
        self._check_soon = soon

    def _idle(self) -> bool:
        """Every task waits: on this clock (and its wait is not over yet), or on other
        tasks (awaiting a task, a gather), and no callback is due to run. A task ready
        to run, or waiting on anything else (a response, a thread, a lock, a real
        timer), holds the time still."""
        # A callback due to run is work under way: a gather whose last child has just
        # ended is not done until its own callback runs, and the check for the jump (a
        # real timer) can land in between.
        ready = getattr(asyncio.get_running_loop(), "_ready", ())  # asyncio's own queue
        if any(not handle.cancelled() for handle in ready):
            return False
        for task in asyncio.all_tasks():
            if task in self._watchers:
                continue
            if task.cancelling():
                return False
            held = self._waits.get(task)
            if held is not None:
                if held.over():
                    return False
                continue
            # The future the task waits on, None when it is ready to run: asyncio's own
            # attribute, the only way to tell which task waits on what.
            awaited = getattr(task, "_fut_waiter", None)
            if not isinstance(awaited, _ON_TASKS) or awaited.done():
                return False
        return True

    def _autojump(self) -> None:
        self._check = None
        if not self._waits:
            return
        if not self._idle():
            # Something else runs or waits on something else (I/O, a thread, a task
            # finishing): look again in a moment, real time.
            self._look(soon=False)
            return
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            stuck = RuntimeError("every task waits on the fake clock and nothing is due")
            for held in self._waits.values():
                if not held.woken.done():
                    held.woken.set_exception(stuck)
            return
        self._elapsed_ns = max(self._elapsed_ns, self._timers[0].due_ns)
        while self._timers and self._timers[0].due_ns <= self._elapsed_ns:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.fire()
        self._look(soon=False)  # in case no task waits on the clock again


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ShiftedClock(Clock):
    """The system clock with its wall time ``offset_s`` ahead: a process started later."""

    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s

    def time(self) -> float:
        return super().time() + self.offset_s

    def now_ms(self) -> int:
        return now_ms() + round(self.offset_s * 1000)
