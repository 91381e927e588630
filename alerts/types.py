"""Shared shapes of the alerts feature: subscriptions, alert payloads, outbox records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict

from federation.core.durations import Duration

Metric = Literal["price", "volume"]
METRICS: tuple[Metric, ...] = ("price", "volume")
EventState = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True)
class NewSubscription:
    """A validated ``POST /alerts`` body: exactly one of webhook and email is set."""

    webhook: str | None
    email: str | None
    pair: str | None = None
    exchange: str | None = None
    metric: Metric | None = None  # None: both metrics
    factor: float = 3.0
    window_s: int = 3600


@dataclass(frozen=True)
class Subscription(NewSubscription):
    id: str = ""
    secret: str = ""  # HMAC key of the webhook signature; shown once, at creation
    created_ms: int = 0
    owner: str = ""  # the API key name that made it

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return METRICS if self.metric is None else (self.metric,)

    def public(self, *, with_secret: bool = False) -> dict[str, object]:
        """The API's view of the subscription."""
        body: dict[str, object] = {
            "id": self.id,
            "webhook": self.webhook,
            "email": self.email,
            "pair": self.pair,
            "exchange": self.exchange,
            "metric": self.metric,
            "factor": self.factor,
            "window": window_text(self.window_s),
            "window_seconds": self.window_s,
            "created_ms": self.created_ms,
            "owner": self.owner,
        }
        if with_secret:
            body["secret"] = self.secret
        return body


@dataclass(frozen=True)
class CrossingKey:
    """One (subscription, series, metric) that is above its threshold right now."""

    subscription_id: str
    exchange: str
    pair: str
    metric: Metric


class AlertPayload(TypedDict):
    """The JSON body of a webhook delivery (and the data of an email)."""

    event_id: str
    subscription_id: str
    pair: str
    exchange: str
    metric: Metric
    value: float
    mean: float
    factor: float
    ratio: float
    window: str
    window_seconds: int
    time: str
    time_ms: int
    # A summary (alerts.budget): this alert stands for itself and this many more of its
    # minute, which ALERTS_MAX_PER_MINUTE kept from going out one by one.
    suppressed: NotRequired[int]


@dataclass(frozen=True)
class EventRecord:
    """One outbox row: an alert and the state of its delivery."""

    id: str
    subscription_id: str
    payload: AlertPayload
    state: EventState
    attempts: int
    created_ms: int
    next_attempt_ms: int
    delivered_ms: int | None
    last_error: str | None

    def public(self) -> dict[str, object]:
        return {
            "event_id": self.id,
            "state": self.state,
            "attempts": self.attempts,
            "created_ms": self.created_ms,
            "next_attempt_ms": self.next_attempt_ms if self.state == "pending" else None,
            "delivered_ms": self.delivered_ms,
            "last_error": self.last_error,
            "alert": self.payload,
        }


def window_text(seconds: int) -> str:
    """``3600`` as ``1h``, ``5400`` as ``90m``: the largest unit that divides it."""
    return Duration.of_seconds(seconds).length
