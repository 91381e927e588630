"""Alerts per subscription per minute, bounded (``ALERTS_MAX_PER_MINUTE``).

A subscription whose series all jump at once (a market-wide move, a feed glitch) would
otherwise raise one alert per series, each an outbox row and a POST. Within a minute of
point time the first ``max - 1`` alerts go out as they are; the rest go out as one
summary: the first of them, with ``suppressed`` the number of further alerts it stands
for and an event id of its own. Their crossings are still raised, so they do not fire
again. Alerts past a summary already sent in the same minute (only when ticks come more
often than once a minute) are counted in a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from itertools import groupby

from alerts.detector import event_id
from alerts.types import AlertPayload

log = logging.getLogger(__name__)

MINUTE_MS = 60_000


def summary(first: AlertPayload, suppressed: int) -> AlertPayload:
    """``first`` standing for itself and ``suppressed`` more alerts of its minute."""
    minute_ms = first["time_ms"] // MINUTE_MS * MINUTE_MS
    return {
        **first,
        "event_id": event_id(first["subscription_id"], "*", "*", "summary", minute_ms),
        "suppressed": suppressed,
    }


class AlertBudget:
    def __init__(self, per_minute: int) -> None:
        if per_minute < 2:
            raise ValueError("per_minute must leave room for a summary (at least 2)")
        self.per_minute = per_minute
        self._spent: dict[tuple[str, int], int] = {}  # (subscription, minute) -> alerts sent
        self.unsent = 0  # alerts past a minute's summary, since start

    def apply(self, alerts: Iterable[AlertPayload]) -> list[AlertPayload]:
        """The alerts to send, in order, with each (subscription, minute)'s excess
        folded into one summary."""
        ordered = sorted(alerts, key=lambda a: (a["subscription_id"], a["time_ms"] // MINUTE_MS))
        if not ordered:
            return []
        newest = max(a["time_ms"] for a in ordered) // MINUTE_MS
        for key in [k for k in self._spent if k[1] < newest - 1]:
            del self._spent[key]
        out: list[AlertPayload] = []
        for key, grouped in groupby(
            ordered, key=lambda a: (a["subscription_id"], a["time_ms"] // MINUTE_MS)
        ):
            group = list(grouped)
            room = self.per_minute - self._spent.get(key, 0)
            if len(group) <= room:
                out += group
                self._spent[key] = self._spent.get(key, 0) + len(group)
            elif room >= 1:
                out += group[: room - 1]
                out.append(summary(group[room - 1], len(group) - room))
                self._spent[key] = self.per_minute
            else:
                self.unsent += len(group)
                log.warning(
                    "alerts: subscription %s raised %d more alerts in a minute already"
                    " summarised (ALERTS_MAX_PER_MINUTE=%d); not sent",
                    key[0],
                    len(group),
                    self.per_minute,
                )
        return out
