"""What the ingester runs for alerts: detection on every tick, delivery beside it.

    service = AlertService(settings.alerts, clients)   # the process's AlertSettings
    await service.start()                 # schema, subscriptions, windows from the shards
    Ingester(..., observers=[service.observe])
    delivery = asyncio.create_task(service.run(stop))
    ...
    await delivery; await service.close()

``observe`` does only in-memory work: it runs the detector and hands what it found to
a writer task that commits it to the outbox, so a slow database never slows a tick.
``run`` re-reads the subscriptions when they change (a version counter, checked every
``poll_interval``; the history of a new window is loaded from the shards) and delivers
the outbox until stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import httpx
import pandas as pd

from alerts import webhook
from alerts.budget import AlertBudget
from alerts.detector import Detection, Detector
from alerts.history import load_window
from alerts.outbox import Outbox
from alerts.settings import AlertSettings
from alerts.store import AlertStore
from federation.core.clock import SYSTEM_CLOCK, Clock
from federation.core.influx import ShardClient
from federation.core.periodic import Periodic

log = logging.getLogger(__name__)

MAX_PENDING = 100_000  # alerts held in memory while the database does not answer


class AlertService:
    def __init__(
        self,
        settings: AlertSettings,
        clients: Mapping[str, ShardClient] | None = None,
        *,
        store: AlertStore | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.clients = dict(clients or {})
        self.store = store or AlertStore(settings.db_url)
        self._own_store = store is None
        self._http = http
        self.clock = clock
        self.detector = Detector(min_points=settings.min_points, clock=clock)
        self.budget = AlertBudget(settings.max_per_minute)
        self.outbox: Outbox | None = None
        self._version: int | None = None
        self._refresh_lock = asyncio.Lock()
        self._pending = Detection()
        self._writer: asyncio.Task[None] | None = None
        self._refresher = Periodic(
            lambda due_ms: self.refresh(),
            settings.poll_interval_s,
            name="alerts: re-reading the subscriptions",
            immediate=True,
            clock=clock,
        )

    async def start(self) -> None:
        await self.store.ensure_schema()
        if self._http is None:
            self._http = webhook.new_client()
            self._own_http = True
        else:
            self._own_http = False
        self.outbox = Outbox(self.store, self.settings, self._http, clock=self.clock)
        await self.refresh()
        counts = await self.store.counts()
        log.info(
            "alerts: %d subscriptions, windows %s, outbox %s",
            len(self.detector.subscriptions),
            sorted(self.detector.windows),
            counts or "empty",
        )

    async def refresh(self) -> bool:
        """Re-read the subscriptions if they changed; True when they had."""
        async with self._refresh_lock:
            version = await self.store.subscriptions_version()
            if version == self._version:
                return False
            stored = await self.store.list_subscriptions()
            # Only the allowed windows are followed, so the ingester's memory is bounded
            # whatever the database holds (rows written before the limit, or by hand).
            subs = [s for s in stored if s.window_s in self.settings.windows]
            if len(subs) < len(stored):
                log.warning(
                    "alerts: %d subscriptions use a window outside ALERTS_WINDOWS; not followed",
                    len(stored) - len(subs),
                )
            new_windows = self.detector.set_subscriptions(subs, await self.store.crossings())
            self._version = version
            log.info("alerts: following %d subscriptions", len(subs))
            for window_s in new_windows:
                cutoff = self.detector.history_cutoff(window_s)
                history = await load_window(self.clients, window_s, cutoff)
                self.detector.add_history(window_s, history)
                log.info("alerts: %ds window ready, %d buckets of history", window_s, len(history))
            return True

    async def observe(self, frame: pd.DataFrame) -> None:
        """The ingester's observer: detect on the tick's frame (after it was written)."""
        if self.outbox is None:
            return  # not started
        try:
            found = self.detector.observe(frame)
        except Exception:  # detection must never break a tick
            log.exception("alerts: detection failed on a frame of %d rows", len(frame))
            return
        if not found:
            return
        found.events = self.budget.apply(found.events)
        if found.events:
            log.info(
                "alerts: %d raised (%s)",
                len(found.events),
                ", ".join(
                    f"{a['exchange']}/{a['pair']} {a['metric']} {a['ratio']:.2f}x"
                    for a in found.events[:5]
                )
                + (" ..." if len(found.events) > 5 else ""),
            )
        self._pending.extend(found)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    async def flush(self) -> None:
        """Wait until everything observed so far is committed to the outbox."""
        while self._writer is not None and not self._writer.done():
            await self._writer
        if self._pending:
            self._writer = asyncio.create_task(self._write())
            await self._writer

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, Detection()
            state = batch.final_state()
            raised = [k for k, up in state.items() if up]
            cleared = [k for k, up in state.items() if not up]
            try:
                await self.store.record(batch.events, raised, cleared, self.clock.now_ms())
            except Exception:
                log.exception("alerts: could not commit %d alerts; retrying", len(batch.events))
                batch.extend(self._pending)
                self._pending = batch
                if len(batch.events) > MAX_PENDING:
                    lost = len(batch.events) - MAX_PENDING
                    del batch.events[:lost]
                    log.error("alerts: database unavailable: dropped the %d oldest alerts", lost)
                await self.clock.sleep(1.0)
                continue
            if self.outbox is not None:
                self.outbox.wake()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow subscription changes and deliver the outbox until ``stop`` is set."""
        if self.outbox is None:
            raise RuntimeError("AlertService.run before start")
        refresher = asyncio.create_task(self._refresher.run(stop))
        try:
            await self.outbox.run(stop)
        finally:
            await refresher

    async def close(self) -> None:
        await self.flush()
        if self.outbox is not None:
            await self.outbox.drain()
        if self._http is not None and self._own_http:
            await self._http.aclose()
        if self._own_store:
            await self.store.close()
