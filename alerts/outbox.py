"""Delivery of the outbox: claim due alerts, deliver each in its own task (webhook or
email), record the outcome.

At-least-once: an alert leaves the outbox only when its receiver acknowledged it (a 2xx,
an SMTP server's acceptance). A failed attempt is retried after ``retry_base x 2^(n-1)``
seconds (capped at ``retry_max``, with jitter) until ``give_up_after`` has passed since
the alert, then it is marked failed. A deliverer that dies mid-attempt leaves its claim
to expire (the lease), and the alert is attempted again. So a receiver may see an alert
twice (an acknowledgement lost on the way back); the event id, the same on every
attempt, is what it de-duplicates on.

Deliveries run concurrently up to ``concurrency``, each with a hard deadline: a slow or
dead receiver holds one slot for at most the timeout and never the ingester's tick.
"""

from __future__ import annotations

import asyncio
import logging
import random

import httpx
import orjson

from alerts import mail, webhook
from alerts.errors import DeliveryFailed
from alerts.netguard import NetworkGuard
from alerts.settings import AlertSettings
from alerts.store import AlertStore, Claimed
from federation.core.clock import SYSTEM_CLOCK, Clock
from federation.core.periodic import Periodic

log = logging.getLogger(__name__)


def backoff_s(attempts: int, settings: AlertSettings, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    delay = min(settings.retry_max_s, settings.retry_base_s * 2 ** min(attempts - 1, 30))
    return float(delay * (rng or random).uniform(0.8, 1.0))


class Outbox:
    def __init__(
        self,
        store: AlertStore,
        settings: AlertSettings,
        http: httpx.AsyncClient,
        *,
        guard: NetworkGuard | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.settings = settings
        self.http = http
        self.guard = guard or NetworkGuard(settings.allow_networks)
        self.clock = clock
        self.delivered = 0
        self.failed_attempts = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self._purged_ms = 0
        # A failed poll is logged and the next one tries again: the database may be
        # briefly unavailable.
        self._poller = Periodic(
            self._poll_once,
            settings.poll_interval_s,
            name="alerts outbox: poll",
            immediate=True,
            clock=clock,
        )

    def wake(self) -> None:
        """New alerts are in the outbox: look now rather than at the next poll."""
        self._poller.wake()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then let the attempts in flight finish."""
        await self._poller.run(stop)
        await self.drain()

    async def _poll_once(self, due_ms: int) -> None:
        await self.poll()
        await self._purge()

    async def poll(self) -> int:
        """Claim what is due, up to the free delivery slots, and start delivering it."""
        free = self.settings.concurrency - len(self._inflight)
        if free <= 0:
            return 0
        lease_ms = round(self.settings.lease_s * 1000)
        claimed = await self.store.claim(self.clock.now_ms(), free, lease_ms)
        for item in claimed:
            task = asyncio.create_task(self._deliver(item))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(claimed)

    async def drain(self) -> None:
        """Wait for the attempts in flight."""
        while self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _deliver(self, item: Claimed) -> None:
        event, sub = item.event, item.subscription
        try:
            if sub is None:
                await self.store.drop(event.id)  # the subscription was deleted
                return
            try:
                if sub.webhook is not None:
                    await webhook.post(
                        self.http,
                        self.guard,
                        sub.webhook,
                        orjson.dumps(event.payload),
                        secret=sub.secret,
                        event_id=event.id,
                        subscription_id=sub.id,
                        attempt=event.attempts + 1,
                        timeout_s=self.settings.delivery_timeout_s,
                    )
                elif sub.email is not None:
                    await mail.send(event.payload, sub.email, self.settings)
            except DeliveryFailed as exc:
                self.failed_attempts += 1
                await self._failed(item, str(exc), permanent=exc.permanent)
                return
            except Exception as exc:
                # Whatever else goes wrong delivering this one event is a failed attempt
                # too, with backoff and give-up: it must not leave the event pending
                # with no attempt counted.
                log.exception("alert %s: delivery raised", event.id)
                self.failed_attempts += 1
                await self._failed(item, f"{type(exc).__name__}: {exc}", permanent=False)
                return
            await self.store.delivered(event.id, self.clock.now_ms())
            self.delivered += 1
            log.debug("alert %s delivered to %s", event.id, sub.webhook or sub.email)
        except Exception:
            # The outcome could not be recorded: the lease expires and it is tried again.
            log.exception("alert %s: recording the delivery failed", event.id)

    async def _failed(self, item: Claimed, error: str, *, permanent: bool) -> None:
        event = item.event
        attempts = event.attempts + 1
        now = self.clock.now_ms()
        if permanent or now - event.created_ms >= self.settings.give_up_after_s * 1000:
            await self.store.failed(event.id, error)
            log.error("alert %s: giving up after %d attempts: %s", event.id, attempts, error)
            return
        delay = backoff_s(attempts, self.settings)
        await self.store.retry(event.id, now + round(delay * 1000), error)
        log.warning(
            "alert %s: attempt %d failed (%s); retrying in %.1fs", event.id, attempts, error, delay
        )

    async def _purge(self) -> None:
        now = self.clock.now_ms()
        if now - self._purged_ms < 3_600_000:
            return
        self._purged_ms = now
        removed = await self.store.purge(now - round(self.settings.retention_s * 1000))
        if removed:
            log.info("alerts outbox: forgot %d delivered or failed alerts", removed)
