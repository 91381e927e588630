"""Alerts per subscription per minute: the excess folded into one summary, never lost
without a word; and the windows the ingester follows, bounded by ALERTS_WINDOWS."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from alerts.budget import AlertBudget
from alerts.service import AlertService
from alerts.settings import AlertSettings, database_url
from alerts.store import AlertStore
from alerts.types import AlertPayload, NewSubscription
from tests.alerts import payload

MINUTE = 60_000
T0 = 1_700_000_040_000  # on a minute boundary


def alerts(sub: str, n: int, at_ms: int = T0) -> list[AlertPayload]:
    return [
        payload(
            sub,
            event_id=f"{sub}-{at_ms}-{i}",
            pair=f"p{i}",
            metric="price",
            value=4.0,
            mean=1.0,
            ratio=4.0,
            time="2023-11-14T22:14:00.000Z",
            time_ms=at_ms,
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [1, 4, 5], ids=["one", "below", "at-the-limit"])
def test_alerts_within_the_budget_all_go_out(n: int) -> None:
    found = alerts("s", n)
    assert AlertBudget(5).apply(found) == found


def test_excess_goes_out_as_one_summary_counting_it() -> None:
    sent = AlertBudget(5).apply(alerts("s", 14_000))
    assert len(sent) == 5
    assert [a.get("suppressed") for a in sent] == [None, None, None, None, 13_995]
    assert 4 + 1 + sent[-1]["suppressed"] == 14_000  # every alert sent or counted


def test_summary_has_an_id_of_its_own_stable_across_runs() -> None:
    first, again = AlertBudget(2).apply(alerts("s", 3)), AlertBudget(2).apply(alerts("s", 3))
    assert first[-1]["event_id"] == again[-1]["event_id"]
    assert first[-1]["event_id"] not in {a["event_id"] for a in alerts("s", 3)}


def test_budgets_are_per_subscription() -> None:
    sent = AlertBudget(3).apply(alerts("a", 3) + alerts("b", 3))
    assert [a["subscription_id"] for a in sent] == ["a"] * 3 + ["b"] * 3
    assert not any("suppressed" in a for a in sent)


def test_budget_is_per_minute() -> None:
    budget = AlertBudget(3)
    budget.apply(alerts("s", 3))
    assert len(budget.apply(alerts("s", 3, T0 + MINUTE))) == 3


def test_second_tick_of_a_minute_shares_its_budget() -> None:
    budget = AlertBudget(4)
    assert len(budget.apply(alerts("s", 2))) == 2
    sent = budget.apply(alerts("s", 5, T0 + 30_000))
    assert (len(sent), sent[-1].get("suppressed")) == (2, 3)  # 1 + the summary of 4


def test_excess_past_a_sent_summary_is_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = AlertBudget(2)
    budget.apply(alerts("s", 5))
    with caplog.at_level(logging.WARNING):
        assert budget.apply(alerts("s", 3, T0 + 30_000)) == []
    assert budget.unsent == 3
    assert "3 more alerts" in caplog.text


async def test_service_follows_only_the_allowed_windows(tmp_path: Path) -> None:
    config = AlertSettings(db_url=database_url(str(tmp_path / "a.sqlite3")), windows=(900, 3600))
    store = AlertStore(config.db_url)
    for window_s in (900, 3600, 7200, 60):  # the last two written before the limit
        await store.create_subscription(
            NewSubscription("https://x.test/", None, window_s=window_s), 1
        )
    service = AlertService(config, store=store)
    await service.refresh()
    await store.close()
    assert (sorted(service.detector.windows), len(service.detector.subscriptions)) == (
        [900, 3600],
        2,
    )
