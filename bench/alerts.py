"""The ingester's memory for alert detection at 14,000 series, whatever is subscribed.

Each distinct window costs a fixed ring of buckets per series (alerts/window.py), and
each subscription one flag per series and metric; ``ALERTS_WINDOWS`` bounds the first
(at most 8 windows) and ``ALERTS_MAX_SUBSCRIPTIONS`` the second. Measured with
tracemalloc (numpy's arrays included) around a detector fed a few ticks of every
series, for one subscription (the baseline) and for the most the limits accept: the
default windows, then 8 windows, each with ``ALERTS_MAX_SUBSCRIPTIONS`` subscriptions.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from dataclasses import dataclass

from alerts.detector import Detector
from alerts.settings import AlertSettings, parse_windows
from alerts.types import Subscription, window_text
from bench.report import write_section
from federation.core.clock import now_ms
from ingest.simulated import SimulatedMarket

MINUTE = 60_000
TICKS = 5
EIGHT = "5m,15m,30m,1h,2h,4h,12h,24h"


@dataclass(frozen=True)
class Run:
    label: str
    windows: tuple[int, ...]
    subscriptions: int
    bytes: int
    tick_ms: float


def subscriptions(windows: tuple[int, ...], count: int) -> list[Subscription]:
    """``count`` subscriptions on every series and both metrics, spread over ``windows``."""
    return [
        Subscription(
            webhook="https://hooks.example/h",
            email=None,
            window_s=windows[i % len(windows)],
            id=f"{i:032x}",
            factor=3.0,
        )
        for i in range(count)
    ]


def measure(label: str, series: int, windows: tuple[int, ...], count: int) -> Run:
    market = SimulatedMarket(series=series, seed=1)
    start = now_ms() // MINUTE * MINUTE
    frames = [market.snapshot(start + i * MINUTE) for i in range(TICKS)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    detector = Detector()
    detector.set_subscriptions(subscriptions(windows, count))
    times = []
    for frame in frames:
        began = time.perf_counter()
        detector.observe(frame)
        times.append((time.perf_counter() - began) * 1000)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return Run(label, windows, count, held, statistics.median(times[1:]))


def main(quick: bool = False) -> None:
    series = 1_400 if quick else 14_000
    limits = AlertSettings()
    second = measure("2 subscriptions, 2 windows", series, (3600, 900), 2)
    runs = [
        measure("baseline: one subscription", series, (3600,), 1),
        measure(
            "default ALERTS_WINDOWS, every subscription allowed",
            series,
            limits.windows,
            limits.max_subscriptions,
        ),
        measure(
            "ALERTS_WINDOWS at its 8, every subscription allowed",
            series,
            parse_windows(EIGHT),
            limits.max_subscriptions,
        ),
    ]
    per_window = (second.bytes - runs[0].bytes) / series  # what one more window costs
    lines = [
        "## Alerts: the ingester's memory for detection",
        "",
        f"`python -m bench alerts`: {series:,} series, {TICKS} ticks of every series fed to"
        " the detector; memory held afterwards, measured with tracemalloc (numpy arrays"
        " included); a tick's detection time is the median of the ticks after the first.",
        "",
        "| case | subscriptions | windows | memory held | x baseline | detection per tick |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for run in runs:
        windows = ",".join(window_text(w) for w in run.windows)
        lines.append(
            f"| {run.label} | {run.subscriptions:,} | {windows} | {run.bytes / 2**20:,.1f} MiB"
            f" | {run.bytes / runs[0].bytes:.1f} | {run.tick_ms:,.0f} ms |"
        )
    worst = max(runs, key=lambda r: r.bytes)
    lines += [
        "",
        f"- One more window costs {per_window:,.0f} bytes per series (2 subscriptions on 2"
        f" windows: {second.bytes / 2**20:,.1f} MiB).",
        f"- Bound: whatever is subscribed, at most {worst.bytes / 2**20:,.0f} MiB at"
        f" {series:,} series with ALERTS_WINDOWS at its 8-window maximum and"
        f" ALERTS_MAX_SUBSCRIPTIONS={limits.max_subscriptions:,} (windows outside"
        " ALERTS_WINDOWS are refused by the API and not followed by the ingester).",
        f"- Without the limits, 1,440 distinct windows (accepted in 3 s before) would hold"
        f" about {1440 * per_window * series / 2**30:,.0f} GiB by the per-window figure.",
    ]
    write_section("alerts", "\n".join(lines))
    print("\n".join(lines))
