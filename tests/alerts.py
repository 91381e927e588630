"""One alert payload for the alerts tests, as the detector would raise it."""

from __future__ import annotations

from typing import Any

from alerts.types import AlertPayload

T0_MS = 1_700_000_000_000  # 2023-11-14T22:13:20.000Z


def payload(subscription_id: str = "s1", **changes: Any) -> AlertPayload:
    """A volume spike of kraken btcusd at 3.5x its hour's mean, with ``changes``."""
    alert = AlertPayload(
        event_id="e1",
        subscription_id=subscription_id,
        pair="btcusd",
        exchange="kraken",
        metric="volume",
        value=350.0,
        mean=100.0,
        factor=3.0,
        ratio=3.5,
        window="1h",
        window_seconds=3600,
        time="2023-11-14T22:13:20.000Z",
        time_ms=T0_MS,
    )
    alert.update(changes)  # type: ignore[typeddict-item]
    return alert
