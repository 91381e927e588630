"""The detector in memory: thresholds, the once-per-crossing rule, filters, windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alerts.detector import Detector
from alerts.types import CrossingKey, Metric, Subscription
from alerts.window import WindowStats
from ingest.simulated import SimulatedMarket
from tests.clock import FakeClock

T0 = 1_700_000_000_000 // 3_600_000 * 3_600_000
MINUTE = 60_000


def sub(sub_id: str = "s1", **filters: object) -> Subscription:
    return Subscription(webhook="https://example.com/hook", email=None, id=sub_id, **filters)  # type: ignore[arg-type]


def detector(*subs: Subscription, crossings: tuple[CrossingKey, ...] = ()) -> Detector:
    found = Detector(clock=FakeClock(0))
    for window_s in found.set_subscriptions(subs or [sub()], crossings):
        found.add_history(window_s, pd.DataFrame())
    return found


def tick(minute: int, volume: float = 100.0, price: float = 10.0, **series: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": [T0 + minute * MINUTE],
            "exchange": [series.get("exchange", "kraken")],
            "pair": [series.get("pair", "btcusd")],
            "price": [price],
            "volume": [volume],
        }
    )


def hour_of_ticks(found: Detector, **series: str) -> None:
    for minute in range(60):
        assert not found.observe(tick(minute, **series))


def test_spike_fires_one_alert_with_the_numbers() -> None:
    found = detector()
    hour_of_ticks(found)
    events = found.observe(tick(60, volume=350.0)).events
    assert len(events) == 1
    alert = events[0]
    assert (alert["metric"], alert["value"], alert["mean"], alert["factor"]) == (
        "volume",
        350.0,
        100.0,
        3.0,
    )
    assert (alert["pair"], alert["exchange"], alert["time_ms"]) == (
        "btcusd",
        "kraken",
        T0 + 3_600_000,
    )


@pytest.mark.parametrize("volume", [299.9, 300.0], ids=["below", "equal"])
def test_point_at_or_below_threshold_fires_nothing(volume: float) -> None:
    found = detector()
    hour_of_ticks(found)
    assert not found.observe(tick(60, volume=volume))


def test_high_series_fires_once_per_crossing() -> None:
    found = detector()
    hour_of_ticks(found)
    fired = [
        len(found.observe(tick(60 + i, volume=v)).events)
        for i, v in enumerate([400, 500, 100, 900])
    ]
    assert fired == [1, 0, 0, 1]


def test_mean_excludes_the_new_point_and_forgets_old_ones() -> None:
    found = detector(sub(window_s=300))
    for minute, volume in enumerate([1000, 1000, 10, 10, 10, 10, 10]):
        found.observe(tick(minute, volume=volume))
    alert = found.observe(tick(7, volume=31.0)).events[0]
    assert alert["mean"] == 10.0


@pytest.mark.parametrize(
    ("filters", "fires"),
    [
        ({"pair": "btcusd"}, True),
        ({"pair": "ethusd"}, False),
        ({"exchange": "kraken"}, True),
        ({"exchange": "bitfinex"}, False),
        ({"metric": "volume"}, True),
        ({"metric": "price"}, False),
        ({"pair": "btcusd", "exchange": "bitfinex"}, False),
    ],
    ids=["pair", "other-pair", "exchange", "other-exchange", "metric", "other-metric", "both"],
)
def test_subscription_filter_is_honoured(filters: dict[str, str], fires: bool) -> None:
    found = detector(sub(**filters))
    hour_of_ticks(found)
    assert bool(found.observe(tick(60, volume=1000.0)).events) is fires


@pytest.mark.parametrize("metric", ["price", "volume"])
def test_each_metric_is_judged_on_its_own(metric: Metric) -> None:
    found = detector()
    hour_of_ticks(found)
    spike = (
        {"price": 50.0, "volume": 100.0} if metric == "price" else {"price": 10.0, "volume": 999.0}
    )
    events = found.observe(tick(60, **spike)).events  # type: ignore[arg-type]
    assert [a["metric"] for a in events] == [metric]


def test_unknown_volume_neither_fires_nor_clears() -> None:
    found = detector(sub(metric="volume"))
    hour_of_ticks(found)
    assert found.observe(tick(60, volume=900.0)).events
    assert not found.observe(tick(61, volume=float("nan")))
    assert not found.observe(tick(62, volume=2000.0)).events


@pytest.mark.parametrize(("raised", "fires"), [(True, False), (False, True)], ids=["raised", "not"])
def test_crossing_state_from_store_decides_after_restart(raised: bool, fires: bool) -> None:
    key = CrossingKey("s1", "kraken", "btcusd", "volume")
    found = Detector(clock=FakeClock(T0 + 3_600_000))
    (window_s,) = found.set_subscriptions([sub(metric="volume")], [key] if raised else [])
    found.add_history(window_s, history_hour())
    assert bool(found.observe(tick(60, volume=900.0)).events) is fires


def test_late_and_repeated_points_are_ignored() -> None:
    found = detector()
    hour_of_ticks(found)
    assert not found.observe(tick(59, volume=900.0))
    assert not found.observe(tick(30, volume=900.0))


def test_event_id_is_stable_across_detectors() -> None:
    ids = []
    for _ in range(2):
        found = detector()
        hour_of_ticks(found)
        ids.append(found.observe(tick(60, volume=900.0)).events[0]["event_id"])
    assert ids[0] == ids[1]


def history_hour() -> pd.DataFrame:
    """What the shards answer for an hour of minute ticks at volume 100, price 10."""
    return pd.DataFrame(
        {
            "exchange": "kraken",
            "pair": "btcusd",
            "time": [T0 + m * MINUTE for m in range(60)],
            "price_sum": 10.0,
            "price_count": 1,
            "volume_sum": 100.0,
            "volume_count": 1,
        }
    )


def test_history_buckets_give_the_same_mean_as_live_points() -> None:
    found = Detector(clock=FakeClock(T0 + 3_600_000))
    (window_s,) = found.set_subscriptions([sub()])
    found.add_history(window_s, history_hour())
    assert found.observe(tick(60, volume=350.0)).events[0]["mean"] == 100.0


def test_window_not_ready_fires_nothing() -> None:
    found = Detector(clock=FakeClock(0))
    found.set_subscriptions([sub()])
    hour_of_ticks(found)
    assert not found.observe(tick(60, volume=900.0))


def test_frame_of_many_ticks_is_observed_in_time_order() -> None:
    found = detector()
    frame = pd.concat([tick(m, volume=900.0 if m == 60 else 100.0) for m in range(61)][::-1])
    assert len(found.observe(frame).events) == 1


def test_window_memory_is_fixed_per_series() -> None:
    stats = WindowStats(3600, capacity=14_000)
    assert stats.nbytes == 14_000 * (61 * 2 * (8 + 4) + 8)


def test_window_clears_buckets_that_left_it() -> None:
    stats = WindowStats(300)  # 5 s buckets
    idx = np.array([0])
    for bucket in range(10):
        stats.advance(idx, bucket)
        stats.add(idx, bucket, np.array([[1.0], [2.0]]))
    stats.advance(idx, 70)
    sums, counts = stats.totals(idx)
    assert (sums.tolist(), counts.tolist()) == ([[0.0], [0.0]], [[0], [0]])


def test_simulated_market_spikes_raise_alerts() -> None:
    """What `make run` simulates (500 series, seed 0) gives alerts within hours."""
    found = detector(sub(metric="volume"))
    events = []
    for frame in SimulatedMarket(series=500, seed=0).history(T0, T0 + 3 * 3_600_000):
        events += found.observe(frame).events
    assert len(events) >= 3
    assert all(e["value"] > 3 * e["mean"] for e in events)
