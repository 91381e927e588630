"""A step run periodically: the one loop behind every background task of the project.

    ticker = Periodic(ingester.tick, 60, name="tick", aligned=True, errors="raise")
    await ticker.run(stop)  # until ``stop`` is set

The schedule, read and waited on through the injected clock only:

- ``aligned``: on wall-clock multiples of the period, plus ``offset_s``, so two processes
  with the same period run at the same moments. A run never overlaps the next: when one
  takes past later boundaries, those are skipped, counted in ``skipped`` and logged, and
  the next run is at the first boundary still ahead. So nothing runs twice for the same
  boundary or in a burst to catch up.
- not aligned: ``period_s`` after the previous run ended.
- ``immediate``: once at start, then on the schedule.
- ``wake()``: at once (a run in progress is followed by another), then on the schedule.

The step gets the time it was due, as epoch ms: its boundary when aligned, else the time
it started. ``stop`` is checked before every run and ends a wait at once; a run in
progress is never cut short. A step that raises is, by ``errors``, logged with its
traceback and counted in ``failures`` while the loop goes on (``"log"``), or ends the
loop by raising (``"raise"``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from federation.core.clock import SYSTEM_CLOCK, Clock
from federation.core.timefmt import iso_time

log = logging.getLogger(__name__)

Step = Callable[[int], Awaitable[object]]


class Periodic:
    def __init__(
        self,
        step: Step,
        period_s: float,
        *,
        name: str,
        aligned: bool = False,
        offset_s: float = 0.0,
        immediate: bool = False,
        errors: Literal["log", "raise"] = "log",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._period_ms = round(period_s * 1000)
        if self._period_ms < 1:
            raise ValueError(f"{name}: the period must be at least 1 ms")
        self._offset_ms = round(offset_s * 1000)
        self._step = step
        self.name = name
        self.aligned = aligned
        self.immediate = immediate
        self.errors = errors
        self.clock = clock
        self.runs = 0  # steps run, failed or not
        self.failures = 0  # steps that raised (errors="log")
        self.skipped = 0  # boundaries a long run went past (aligned)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Run now rather than at the next scheduled time."""
        self._wake.set()

    def next_boundary(self, after_ms: int) -> int:
        """The first aligned time strictly after ``after_ms``."""
        shifted = after_ms - self._offset_ms
        return (shifted // self._period_ms + 1) * self._period_ms + self._offset_ms

    async def run(self, stop: asyncio.Event, max_runs: int | None = None) -> None:
        """Run the step on the schedule until ``stop`` is set (or ``max_runs`` ran)."""
        done = 0
        deadline, boundary = (self.clock.monotonic(), None) if self.immediate else self._plan(None)
        while not stop.is_set() and (max_runs is None or done < max_runs):
            woken = await self.clock.wait(deadline, stop, self._wake)
            if woken is stop:
                break
            if woken is self._wake:
                boundary = None  # off the schedule: due now
            self._wake.clear()  # a wake() during the run below calls for another one
            due = self.clock.now_ms() if boundary is None else boundary
            await self._run_once(due)
            done += 1
            deadline, boundary = self._plan(due)

    async def _run_once(self, due_ms: int) -> None:
        self.runs += 1
        try:
            await self._step(due_ms)
        except Exception:
            if self.errors == "raise":
                raise
            self.failures += 1
            log.exception("%s failed; going on (%d failures so far)", self.name, self.failures)

    def _plan(self, ran_ms: int | None) -> tuple[float, int | None]:
        """The next run's monotonic deadline and, when aligned, its boundary; counts and
        logs the boundaries the run due at ``ran_ms`` went past."""
        now_ms, now = self.clock.now_ms(), self.clock.monotonic()
        if not self.aligned:
            return now + self._period_ms / 1000, None
        # Strictly after the run's own time too: a wait that ended a little early on
        # the wall clock never runs the same boundary twice.
        boundary = self.next_boundary(now_ms if ran_ms is None else max(now_ms, ran_ms))
        if (
            ran_ms is not None
            and (missed := (boundary - self.next_boundary(ran_ms)) // self._period_ms) > 0
        ):
            self.skipped += missed
            log.warning(
                "%s at %s ran past %d boundaries: skipped them", self.name, iso_time(ran_ms), missed
            )
        return now + (boundary - now_ms) / 1000, boundary
